"""Pure-Python CLIP BPE tokenizer (``openai/clip-vit-large-patch14``), no torch.

sd-scripts tokenizes captions with ``transformers.CLIPTokenizer`` (the slow,
pure-Python one) loaded from ``openai/clip-vit-large-patch14`` or, with
``--tokenizer_cache_dir``, from ``<cache>/openai_clip-vit-large-patch14``.  This
module reproduces the ids that tokenizer produces, using only the standard
library and the BPE merges file shipped in the ``open-clip-torch`` wheel
(``orchestrator/data/bpe_simple_vocab_16e6.txt.gz``, see the README there), so
the laptop side of the orchestrator can count caption tokens exactly, and can
write the tokenizer folder for sd-scripts so the GPU box never needs the Hub.

Behaviour mirrors transformers 4.54.1 ``models/clip/tokenization_clip.py`` plus
``PreTrainedTokenizer.tokenize``:

* the literal special tokens ``<|startoftext|>`` / ``<|endoftext|>`` in the
  input are split out first (the added-token trie) and map straight to 49406 /
  49407; every other piece is tokenized independently;
* text cleaning: if ``ftfy`` is importable (sd-scripts requires it, so that is
  the path used in training) each piece goes through ``ftfy.fix_text`` with its
  defaults, then runs of whitespace (the ``regex`` module's ``\\s``) collapse to
  one space, ``str.strip()``, ``str.lower()``.  Without ftfy, transformers falls
  back to ``BasicTokenizer(strip_accents=False, do_split_on_punc=False)``
  (control characters dropped, CJK ideographs spaced out, NFC, lower case); we
  do the same, so counts then follow transformers' non-ftfy path (they differ
  from the ftfy path only for text ftfy would repair: mojibake, HTML entities,
  curly quotes, full-width forms, ligatures, control characters, ...);
* pre-tokenization with CLIP's pattern
  ``<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+``
  compiled with ``regex.IGNORECASE``.  The stdlib ``re`` has no ``\\p{..}``, so
  the classes are spelled out from tables generated from the ``regex`` module
  (2026.11.15, Unicode 17.0); they agree with Python 3.11's ``unicodedata`` on
  every code point it knows and additionally cover characters assigned in
  Unicode 15-17.  IGNORECASE quirks are kept: ``'ſ`` (U+017F) matches ``'s``,
  and U+0345 (combining ypogegrammeni, which case-folds to a letter) is matched
  by no alternative, so it is silently dropped, exactly as CLIP does;
* each pre-token's UTF-8 bytes are mapped through GPT-2's byte-to-unicode
  table, the last symbol gets ``</w>``, and BPE merges are applied by rank
  (first 49152-256-2 = 48894 merges, as CLIP does).  Results are cached per
  pre-token.

Caption budgets as sd-scripts counts them: ``caption_token_count`` gives the
number of tokens without BOS/EOS.  With ``--max_token_length`` unset the budget
is 75 tokens (77 with BOS/EOS); with 150 or 225 sd-scripts tokenizes to
``max_token_length + 2`` ids and splits the content into 75-token chunks (each
wrapped in BOS/EOS for the text encoder), so the budget is simply
``max_token_length`` content tokens; anything beyond is truncated.
"""

from __future__ import annotations

import bisect
import gzip
import json
import os
import re
import threading
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Optional

try:  # optional, mirrors transformers' choice
    import ftfy as _ftfy
except ImportError:  # pragma: no cover - depends on environment
    _ftfy = None

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "VOCAB_SIZE",
    "MODEL_MAX_LENGTH",
    "CHUNK_TOKENS",
    "HF_TOKENIZER_NAME",
    "ClipTokenizer",
    "default_tokenizer",
    "write_hf_tokenizer_dir",
    "write_sd_scripts_tokenizer_cache",
    "caption_token_count",
    "caption_budget",
    "caption_fits",
]

BPE_PATH = Path(__file__).resolve().parent / "data" / "bpe_simple_vocab_16e6.txt.gz"

VOCAB_SIZE = 49408
BOS_ID = 49406
EOS_ID = 49407
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
MODEL_MAX_LENGTH = 77  # 75 content tokens + BOS + EOS
CHUNK_TOKENS = 75  # sd-scripts splits long captions into chunks of this many tokens
HF_TOKENIZER_NAME = "openai/clip-vit-large-patch14"
_NUM_MERGES = 49152 - 256 - 2  # merges CLIP uses: lines 1..48894 of the file

# Code point ranges (hex, inclusive) that the ``regex`` module matches, under
# IGNORECASE as CLIP compiles its pattern, with [\p{L}], [\p{N}] and \s.
# Generated with regex 2026.11.15 (Unicode 17.0) by sweeping every code point.
_LETTER_RANGES = (
    "41-5A 61-7A AA B5 BA C0-D6 D8-F6 F8-2C1 2C6-2D1 2E0-2E4 2EC 2EE 370-374 376-377 37A-37D 37F "
    "386 388-38A 38C 38E-3A1 3A3-3F5 3F7-481 48A-52F 531-556 558-559 560-588 58B-58C 5D0-5EA "
    "5EF-5F2 620-64A 66E-66F 671-6D3 6D5 6E5-6E6 6EE-6EF 6FA-6FC 6FF 710 712-72F 74D-7A5 7B1 "
    "7CA-7EA 7F4-7F5 7FA 800-815 81A 824 828 840-858 860-86A 870-887 889-88F 8A0-8C9 904-939 93D "
    "950 958-961 971-980 985-98C 98F-990 993-9A8 9AA-9B0 9B2 9B6-9B9 9BD 9CE 9DC-9DD 9DF-9E1 "
    "9F0-9F1 9FC A05-A0A A0F-A10 A13-A28 A2A-A30 A32-A33 A35-A36 A38-A39 A59-A5C A5E A72-A74 "
    "A85-A8D A8F-A91 A93-AA8 AAA-AB0 AB2-AB3 AB5-AB9 ABD AD0 AE0-AE1 AF9 B05-B0C B0F-B10 B13-B28 "
    "B2A-B30 B32-B33 B35-B39 B3D B5C-B5D B5F-B61 B71 B83 B85-B8A B8E-B90 B92-B95 B99-B9A B9C "
    "B9E-B9F BA3-BA4 BA8-BAA BAE-BB9 BD0 C05-C0C C0E-C10 C12-C28 C2A-C39 C3D C58-C5A C5C-C5D "
    "C60-C61 C80 C85-C8C C8E-C90 C92-CA8 CAA-CB3 CB5-CB9 CBD CDC-CDE CE0-CE1 CF1-CF2 D04-D0C "
    "D0E-D10 D12-D3A D3D D4E D54-D56 D5F-D61 D7A-D7F D85-D96 D9A-DB1 DB3-DBB DBD DC0-DC6 E01-E30 "
    "E32-E33 E40-E46 E81-E82 E84 E86-E8A E8C-EA3 EA5 EA7-EB0 EB2-EB3 EBD EC0-EC4 EC6 EDC-EDF F00 "
    "F40-F47 F49-F6C F88-F8C 1000-102A 103F 1050-1055 105A-105D 1061 1065-1066 106E-1070 "
    "1075-1081 108E 10A0-10C5 10C7 10CD 10D0-10FA 10FC-1248 124A-124D 1250-1256 1258 125A-125D "
    "1260-1288 128A-128D 1290-12B0 12B2-12B5 12B8-12BE 12C0 12C2-12C5 12C8-12D6 12D8-1310 "
    "1312-1315 1318-135A 1380-138F 13A0-13F5 13F8-13FD 1401-166C 166F-167F 1681-169A 16A0-16EA "
    "16F1-16F8 1700-1711 171F-1731 1740-1751 1760-176C 176E-1770 1780-17B3 17D7 17DC 1820-1878 "
    "1880-1884 1887-18A8 18AA 18B0-18F5 1900-191E 1950-196D 1970-1974 1980-19AB 19B0-19C9 "
    "1A00-1A16 1A20-1A54 1AA7 1B05-1B33 1B45-1B4C 1B83-1BA0 1BAE-1BAF 1BBA-1BE5 1C00-1C23 "
    "1C4D-1C4F 1C5A-1C7D 1C80-1C8A 1C90-1CBA 1CBD-1CBF 1CE9-1CEC 1CEE-1CF3 1CF5-1CF6 1CFA "
    "1D00-1DBF 1E00-1F15 1F18-1F1D 1F20-1F45 1F48-1F4D 1F50-1F57 1F59 1F5B 1F5D 1F5F-1F7D "
    "1F80-1FB4 1FB6-1FBC 1FBE 1FC2-1FC4 1FC6-1FCC 1FD0-1FD3 1FD6-1FDB 1FE0-1FEC 1FF2-1FF4 "
    "1FF6-1FFC 2071 207F 208F-209F 2102 2107 210A-2113 2115 2119-211D 2124 2126 2128 212A-212D "
    "212F-2139 213C-213F 2145-2149 214E 2183-2184 2C00-2CE4 2CEB-2CEE 2CF2-2CF3 2D00-2D25 2D27 "
    "2D2D 2D30-2D67 2D6F 2D80-2D96 2DA0-2DA6 2DA8-2DAE 2DB0-2DB6 2DB8-2DBE 2DC0-2DC6 2DC8-2DCE "
    "2DD0-2DD6 2DD8-2DDE 2E2F 3005-3006 3031-3035 303B-303C 3041-3096 309D-309F 30A1-30FA "
    "30FC-30FF 3105-312F 3131-318E 31A0-31BF 31F0-31FF 3400-4DBF 4E00-A48C A4D0-A4FD A500-A60C "
    "A610-A61F A62A-A62B A640-A66E A67F-A69D A6A0-A6E5 A717-A71F A722-A788 A78B-A7DD A7E2 "
    "A7F1-A801 A803-A805 A807-A80A A80C-A822 A840-A873 A882-A8B3 A8F2-A8F7 A8FB A8FD-A8FE "
    "A90A-A925 A930-A946 A960-A97C A984-A9B2 A9CF A9E0-A9E4 A9E6-A9EF A9FA-A9FE AA00-AA28 "
    "AA40-AA42 AA44-AA4B AA60-AA76 AA7A AA7E-AAAF AAB1 AAB5-AAB6 AAB9-AABD AAC0 AAC2 AADB-AADD "
    "AAE0-AAEA AAF2-AAF4 AB01-AB06 AB09-AB0E AB11-AB16 AB20-AB26 AB28-AB2E AB30-AB5A AB5C-AB69 "
    "AB6C-AB6D AB70-ABE2 AC00-D7A3 D7B0-D7C6 D7CB-D7FB F900-FA6D FA70-FAD9 FB00-FB06 FB13-FB17 "
    "FB1D FB1F-FB28 FB2A-FB36 FB38-FB3C FB3E FB40-FB41 FB43-FB44 FB46-FBB1 FBD3-FD3D FD50-FD8F "
    "FD92-FDC7 FDF0-FDFB FE70-FE74 FE76-FEFC FF21-FF3A FF41-FF5A FF66-FFBE FFC2-FFC7 FFCA-FFCF "
    "FFD2-FFD7 FFDA-FFDC 10000-1000B 1000D-10026 10028-1003A 1003C-1003D 1003F-1004D 10050-1005D "
    "10080-100FA 10280-1029C 102A0-102D0 10300-1031F 1032D-10340 10342-10349 10350-10375 "
    "10380-1039D 103A0-103C3 103C8-103CF 10400-1049D 104B0-104D3 104D8-104FB 10500-10527 "
    "10530-10563 10570-1057A 1057C-1058A 1058C-10592 10594-10595 10597-105A1 105A3-105B1 "
    "105B3-105B9 105BB-105BC 105C0-105F3 10600-10736 10740-10755 10760-10767 10780-10785 "
    "10787-107B0 107B2-107BF 10800-10805 10808 1080A-10835 10837-10838 1083C 1083F-10855 "
    "10860-10876 10880-1089E 108E0-108F2 108F4-108F5 10900-10915 10920-10939 10940-10959 "
    "10980-109B7 109BE-109BF 10A00 10A10-10A13 10A15-10A17 10A19-10A35 10A60-10A7C 10A80-10A9C "
    "10AC0-10AC7 10AC9-10AE4 10B00-10B35 10B40-10B55 10B60-10B72 10B80-10B91 10C00-10C48 "
    "10C80-10CB2 10CC0-10CF2 10D00-10D23 10D4A-10D65 10D6F-10D85 10E80-10EA9 10EB0-10EB1 "
    "10EC2-10EC7 10ED9-10EEE 10F00-10F1C 10F27 10F30-10F45 10F70-10F81 10FB0-10FC4 10FE0-10FF6 "
    "11003-11037 11071-11072 11075 11083-110AF 110D0-110E8 11103-11126 11144 11147 11150-11172 "
    "11176 11183-111B2 111C1-111C4 111DA 111DC 11200-11211 11213-1122B 1123F-11240 11280-11286 "
    "11288 1128A-1128D 1128F-1129D 1129F-112A8 112B0-112DE 11305-1130C 1130F-11310 11313-11328 "
    "1132A-11330 11332-11333 11335-11339 1133D 11350 1135D-11361 11380-11389 1138B 1138E "
    "11390-113B5 113B7 113D1 113D3 11400-11434 11447-1144A 1145F-11461 11480-114AF 114C4-114C5 "
    "114C7 11580-115AE 115D8-115DB 11600-1162F 11644 11680-116AA 116B8 11700-1171A 11740-11746 "
    "11800-1182B 118A0-118DF 118FF-11906 11909 1190C-11913 11915-11916 11918-1192F 1193F 11941 "
    "119A0-119A7 119AA-119D0 119E1 119E3 11A00 11A0B-11A32 11A3A 11A50 11A5C-11A89 11A9D "
    "11AB0-11AF8 11B0A 11BC0-11BE0 11C00-11C08 11C0A-11C2E 11C40 11C72-11C8F 11D00-11D06 "
    "11D08-11D09 11D0B-11D30 11D46 11D60-11D65 11D67-11D68 11D6A-11D89 11D98 11DB0-11DDB 11DF1 "
    "11EE0-11EF2 11F02 11F04-11F10 11F12-11F33 11FB0 12000-12399 12480-12543 12F90-12FF0 "
    "13000-1342F 13441-13446 13460-143FA 14400-14646 16100-1611D 16800-16A38 16A40-16A5E "
    "16A70-16ABE 16AD0-16AED 16B00-16B2F 16B40-16B43 16B63-16B77 16B7D-16B8F 16D40-16D6C "
    "16E40-16E7F 16EA0-16EB8 16EBB-16ED3 16F00-16F4A 16F50 16F93-16F9F 16FE0-16FE1 16FE3 "
    "16FF2-16FF3 17000-18CDA 18CFF-18D20 18D80-18DF2 18E00-19191 191A0-191D2 1AFF0-1AFF3 "
    "1AFF5-1AFFB 1AFFD-1AFFE 1B000-1B128 1B132 1B150-1B152 1B155 1B164-1B168 1B170-1B2FB "
    "1BC00-1BC6A 1BC70-1BC7C 1BC80-1BC88 1BC90-1BC99 1D400-1D454 1D456-1D49C 1D49E-1D49F 1D4A2 "
    "1D4A5-1D4A6 1D4A9-1D4AC 1D4AE-1D4B9 1D4BB 1D4BD-1D4C3 1D4C5-1D505 1D507-1D50A 1D50D-1D514 "
    "1D516-1D51C 1D51E-1D539 1D53B-1D53E 1D540-1D544 1D546 1D54A-1D550 1D552-1D6A6 1D6A8-1D6C0 "
    "1D6C2-1D6DA 1D6DC-1D6FA 1D6FC-1D714 1D716-1D734 1D736-1D74E 1D750-1D76E 1D770-1D788 "
    "1D78A-1D7A8 1D7AA-1D7C2 1D7C4-1D7CB 1DF00-1DF81 1DF90-1DF96 1DFCD-1DFFF 1E030-1E06D "
    "1E100-1E12C 1E137-1E13D 1E14E 1E290-1E2AD 1E2C0-1E2EB 1E4D0-1E4EB 1E5D0-1E5ED 1E5F0 "
    "1E6C0-1E6DE 1E6E0-1E6E2 1E6E4-1E6E5 1E6E7-1E6ED 1E6F0-1E6F4 1E6FE-1E6FF 1E7E0-1E7E6 "
    "1E7E8-1E7EB 1E7ED-1E7EE 1E7F0-1E7FE 1E800-1E8C4 1E900-1E943 1E94B 1EE00-1EE03 1EE05-1EE1F "
    "1EE21-1EE22 1EE24 1EE27 1EE29-1EE32 1EE34-1EE37 1EE39 1EE3B 1EE42 1EE47 1EE49 1EE4B "
    "1EE4D-1EE4F 1EE51-1EE52 1EE54 1EE57 1EE59 1EE5B 1EE5D 1EE5F 1EE61-1EE62 1EE64 1EE67-1EE6A "
    "1EE6C-1EE72 1EE74-1EE77 1EE79-1EE7C 1EE7E 1EE80-1EE89 1EE8B-1EE9B 1EEA1-1EEA3 1EEA5-1EEA9 "
    "1EEAB-1EEBB 20000-2A6DF 2A700-2B81E 2B820-2CEAD 2CEB0-2EBE0 2EBF0-2EE5D 2F800-2FA1D "
    "30000-3134A 31350-33479 3D000-3FC3F "
)

_NUMBER_RANGES = (
    "30-39 B2-B3 B9 BC-BE 660-669 6F0-6F9 7C0-7C9 966-96F 9E6-9EF 9F4-9F9 A66-A6F AE6-AEF B66-B6F "
    "B72-B77 BE6-BF2 C66-C6F C78-C7E CE6-CEF D58-D5E D66-D78 DE6-DEF E50-E59 ED0-ED9 F20-F33 "
    "1040-1049 1090-1099 1369-137C 16EE-16F0 17E0-17E9 17F0-17F9 1810-1819 1946-194F 19D0-19DA "
    "1A80-1A89 1A90-1A99 1B50-1B59 1BB0-1BB9 1C40-1C49 1C50-1C59 2070 2074-2079 2080-2089 "
    "2150-2182 2185-2189 2460-249B 24EA-24FF 2776-2793 2CFD 3007 3021-3029 3038-303A 3192-3195 "
    "3220-3229 3248-324F 3251-325F 3280-3289 32B1-32BF A620-A629 A6E6-A6EF A830-A835 A8D0-A8D9 "
    "A900-A909 A9D0-A9D9 A9F0-A9F9 AA50-AA59 ABF0-ABF9 FF10-FF19 10107-10133 10140-10178 "
    "1018A-1018B 102E1-102FB 10320-10323 10341 1034A 103D1-103D5 104A0-104A9 10858-1085F "
    "10879-1087F 108A7-108AF 108FB-108FF 10916-1091B 109BC-109BD 109C0-109CF 109D2-109FF "
    "10A40-10A48 10A7D-10A7E 10A9D-10A9F 10AEB-10AEF 10B58-10B5F 10B78-10B7F 10BA9-10BAF "
    "10CFA-10CFF 10D30-10D39 10D40-10D49 10E60-10E7E 10F1D-10F26 10F51-10F54 10FC5-10FCB "
    "11052-1106F 110F0-110F9 11136-1113F 111D0-111D9 111E1-111F4 112F0-112F9 11450-11459 "
    "114D0-114D9 11650-11659 116C0-116C9 116D0-116E3 11730-1173B 118E0-118F2 11950-11959 "
    "11BF0-11BF9 11C50-11C6C 11D50-11D59 11DA0-11DA9 11DE0-11DE9 11F50-11F59 11FC0-11FD4 "
    "12400-1246F 12475-1247F 12550-12686 16130-16139 16A60-16A69 16AC0-16AC9 16B50-16B59 "
    "16B5B-16B61 16D70-16D79 16E80-16E96 16FF4-16FF6 1CCF0-1CCF9 1D2C0-1D2D3 1D2E0-1D2F3 "
    "1D360-1D378 1D7CE-1D7FF 1E140-1E149 1E2F0-1E2F9 1E4F0-1E4F9 1E5F1-1E5FA 1E8C7-1E8CF "
    "1E950-1E959 1EC71-1ECAB 1ECAD-1ECAF 1ECB1-1ECB4 1ED01-1ED2D 1ED2F-1ED3D 1F100-1F10C "
    "1FBF0-1FBF9 "
)

_SPACE_RANGES = (
    "9-D 20 85 A0 1680 2000-200A 2028-2029 202F 205F 3000 "
)


def _parse_ranges(spec: str) -> list[tuple[int, int]]:
    out = []
    for item in spec.split():
        lo, _, hi = item.partition("-")
        out.append((int(lo, 16), int(hi or lo, 16)))
    return out


def _class_body(ranges: Iterable[tuple[int, int]]) -> str:
    """Ranges as the inside of a stdlib ``re`` character class."""
    parts = []
    for lo, hi in ranges:
        parts.append(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}")
    return "".join(parts)


def _ci(literal: str) -> str:
    """A literal as ``regex.IGNORECASE`` matches it (simple case folding)."""
    out = []
    for ch in literal:
        if ch.isalpha():
            variants = {ch.lower(), ch.upper()}
            if ch.lower() == "s":
                variants.add("\u017f")  # LATIN SMALL LETTER LONG S folds to 's'
            out.append("[" + "".join(sorted(variants)) + "]")
        else:
            out.append(re.escape(ch))
    return "".join(out)


_ASTRAL = 0x10000


def _build_pattern(limit: int) -> "re.Pattern[str]":
    """CLIP's pre-tokenizer, alternative for alternative, with the character
    classes restricted to code points below ``limit``.

    U+0345 is left out of the "other" class: under IGNORECASE the regex module
    counts it as \\p{L} inside the negated class (it folds to GREEK SMALL
    LETTER IOTA) while the positive [\\p{L}] does not match it, so CLIP drops it.
    """

    def body(spec: str) -> str:
        return _class_body((lo, min(hi, limit - 1)) for lo, hi in _parse_ranges(spec) if lo < limit)

    letters, numbers, spaces = body(_LETTER_RANGES), body(_NUMBER_RANGES), body(_SPACE_RANGES)
    return re.compile(
        "|".join(
            [_ci(BOS_TOKEN), _ci(EOS_TOKEN)]
            + [_ci(c) for c in ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")]
            + [f"[{letters}]+", f"[{numbers}]", f"[^{spaces}{letters}{numbers}\u0345]+"]
        )
    )


# The stdlib re scans astral ranges of a class linearly (~10x slower), while a
# class confined to the BMP compiles to a constant-time bitmap.  So matching
# always uses BMP-only classes; astral characters (emoji, ...) are first
# replaced, one code point for one, by a BMP stand-in of the same class (none
# of them can be part of a special token or contraction), and the matches are
# then cut from the original text at the same offsets.  _PAT is the literal,
# unoptimised pattern (kept for reference and tests).
_PAT = _build_pattern(0x110000)
_PAT_BMP = _build_pattern(_ASTRAL)


class _AstralFold(dict):
    """``str.translate`` map: BMP code points unchanged, astral ones to 'b'
    (letter), '0' (number) or '!' (other); filled lazily."""

    def __init__(self) -> None:
        super().__init__()
        self._letters = _parse_ranges(_LETTER_RANGES)
        self._numbers = _parse_ranges(_NUMBER_RANGES)

    @staticmethod
    def _inside(ranges: list[tuple[int, int]], cp: int) -> bool:
        i = bisect.bisect_right(ranges, (cp, 0x10FFFF)) - 1
        return i >= 0 and ranges[i][0] <= cp <= ranges[i][1]

    def __missing__(self, cp: int) -> int:
        if cp < _ASTRAL:
            out = cp
        elif self._inside(self._letters, cp):
            out = ord("b")
        elif self._inside(self._numbers, cp):
            out = ord("0")
        else:
            out = ord("!")
        self[cp] = out
        return out


_ASTRAL_FOLD = _AstralFold()
_WS_RUN = re.compile("[" + _class_body(_parse_ranges(_SPACE_RANGES)) + "]+")
# The added-token trie of PreTrainedTokenizer: exact, case-sensitive.
_SPECIAL_SPLIT = re.compile(f"({re.escape(BOS_TOKEN)}|{re.escape(EOS_TOKEN)})")
_SPECIAL_IDS = {BOS_TOKEN: BOS_ID, EOS_TOKEN: EOS_ID}


@lru_cache(maxsize=None)
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


# str.translate table applied to a latin-1 view of the UTF-8 bytes.
_BYTE_TRANSLATE = {b: c for b, c in _bytes_to_unicode().items()}


# --- text cleaning -----------------------------------------------------------


def _whitespace_clean(text: str) -> str:
    return _WS_RUN.sub(" ", text).strip()


def _findall(text: str) -> list[str]:
    """``regex.findall(CLIP pattern, text)``."""
    if not text:
        return []
    if ord(max(text)) < _ASTRAL:
        return _PAT_BMP.findall(text)
    folded = text.translate(_ASTRAL_FOLD)
    return [text[m.start() : m.end()] for m in _PAT_BMP.finditer(folded)]


def _is_whitespace(ch: str) -> bool:  # transformers.tokenization_utils._is_whitespace
    if ch in " \t\n\r":
        return True
    return unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:  # transformers.tokenization_utils._is_control
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def _is_cjk(cp: int) -> bool:  # BasicTokenizer._is_chinese_char
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class _BasicCleanTable(dict):
    """Per-character map for ``str.translate`` implementing BasicTokenizer's
    ``_clean_text`` (drop NUL, U+FFFD and category C* except \\t\\n\\r; whitespace
    -> space) and ``_tokenize_chinese_chars`` (pad CJK ideographs with spaces),
    filled lazily."""

    def __missing__(self, cp: int) -> str:
        ch = chr(cp)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            out = ""
        elif _is_whitespace(ch):
            out = " "
        elif _is_cjk(cp):
            out = f" {ch} "
        else:
            out = ch
        self[cp] = out
        return out


_BASIC_CLEAN = _BasicCleanTable()


def _basic_clean(text: str) -> str:
    """transformers' non-ftfy path: ``" ".join(BasicTokenizer(strip_accents=False,
    do_split_on_punc=False).tokenize(text))`` (do_lower_case=True): clean, NFC,
    split on whitespace, lower-case each word, re-split, join with spaces."""
    text = unicodedata.normalize("NFC", text.translate(_BASIC_CLEAN))
    return " ".join(" ".join(tok.lower() for tok in text.split()).split())


# --- tokenizer ---------------------------------------------------------------


class ClipTokenizer:
    """CLIP BPE tokenizer giving the same ids as transformers' slow CLIPTokenizer.

    ``use_ftfy``: ``None`` (default) uses ftfy when importable, like
    transformers; ``False`` forces transformers' non-ftfy cleaning; ``True``
    requires ftfy.
    """

    vocab_size = VOCAB_SIZE
    bos_id = BOS_ID
    eos_id = EOS_ID

    def __init__(self, bpe_path: str | os.PathLike | None = None, use_ftfy: Optional[bool] = None):
        path = Path(bpe_path) if bpe_path is not None else BPE_PATH
        with gzip.open(path, "rb") as fh:
            lines = fh.read().decode("utf-8").split("\n")
        # Line 0 is a header; CLIP keeps exactly the next 48894 merges.
        merges = [tuple(line.split()) for line in lines[1 : _NUM_MERGES + 1]]
        if len(merges) != _NUM_MERGES or any(len(m) != 2 for m in merges):
            raise ValueError(f"{path}: not a CLIP bpe_simple_vocab_16e6 merges file")
        self.merges: list[tuple[str, str]] = merges  # type: ignore[assignment]

        byte_chars = list(_bytes_to_unicode().values())
        vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges] + [BOS_TOKEN, EOS_TOKEN]
        self.encoder: dict[str, int] = {tok: i for i, tok in enumerate(vocab)}
        if len(self.encoder) != VOCAB_SIZE or self.encoder[BOS_TOKEN] != BOS_ID or self.encoder[EOS_TOKEN] != EOS_ID:
            raise ValueError(f"{path}: unexpected vocabulary (size {len(self.encoder)})")
        self.decoder: dict[int, str] = {i: tok for tok, i in self.encoder.items()}
        self.bpe_ranks: dict[tuple[str, str], int] = {m: i for i, m in enumerate(merges)}

        if use_ftfy is None:
            use_ftfy = _ftfy is not None
        if use_ftfy and _ftfy is None:
            raise ImportError("ftfy is not installed")
        self.uses_ftfy: bool = bool(use_ftfy)
        self._fix_text: Optional[Callable[[str], str]] = _ftfy.fix_text if use_ftfy else None

        # pre-token (before byte encoding) -> ids.  Seeded like transformers' cache.
        self._cache: dict[str, tuple[int, ...]] = {BOS_TOKEN: (BOS_ID,), EOS_TOKEN: (EOS_ID,)}
        self._cache_limit = 500_000

    # -- core -----------------------------------------------------------------

    def _bpe(self, word: str) -> tuple[str, ...]:
        """BPE of one byte-encoded pre-token, as CLIPTokenizer.bpe (split on ' ')."""
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        ranks = self.bpe_ranks
        while len(symbols) > 1:
            best = None
            best_rank = None
            for pair in zip(symbols, symbols[1:]):
                r = ranks.get(pair)
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = pair, r
            if best is None:
                break
            first, second = best
            merged = first + second
            out = []
            i = 0
            n = len(symbols)
            while i < n:
                if i < n - 1 and symbols[i] == first and symbols[i + 1] == second:
                    out.append(merged)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            symbols = out
        return tuple(symbols)

    def _pretoken_ids(self, piece: str) -> tuple[int, ...]:
        ids = self._cache.get(piece)
        if ids is None:
            word = piece.encode("utf-8").decode("latin-1").translate(_BYTE_TRANSLATE)
            ids = tuple(self.encoder[sym] for sym in self._bpe(word))
            cache = self._cache
            if len(cache) >= self._cache_limit:  # bound memory on huge corpora
                cache.clear()
                cache.update({BOS_TOKEN: (BOS_ID,), EOS_TOKEN: (EOS_ID,)})
            cache[piece] = ids
        return ids

    def clean_text(self, text: str) -> str:
        """The text CLIP's pre-tokenizer sees for a piece without special tokens."""
        if self._fix_text is not None:
            return _whitespace_clean(self._fix_text(text)).lower()
        return _basic_clean(text)

    def pretokenize(self, text: str) -> list[str]:
        """Pre-tokens (words/number digits/punctuation runs), special tokens included."""
        out: list[str] = []
        for segment in _SPECIAL_SPLIT.split(text):
            if not segment:
                continue
            if segment in _SPECIAL_IDS:
                out.append(segment)
            else:
                out.extend(_findall(self.clean_text(segment)))
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids without BOS/EOS, as ``CLIPTokenizer(text, add_special_tokens=False).input_ids``."""
        ids: list[int] = []
        for segment in _SPECIAL_SPLIT.split(text):
            if not segment:
                continue
            special = _SPECIAL_IDS.get(segment)
            if special is not None:
                ids.append(special)
                continue
            for piece in _findall(self.clean_text(segment)):
                ids.extend(self._pretoken_ids(piece))
        return ids

    def encode_with_special(self, text: str) -> list[int]:
        """``[BOS] + encode(text) + [EOS]`` (no truncation, no padding)."""
        return [BOS_ID, *self.encode(text), EOS_ID]

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def tokenize(self, text: str) -> list[str]:
        """Token strings (``</w>`` marks word ends), like ``CLIPTokenizer.tokenize``."""
        return [self.decoder[i] for i in self.encode(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids back to text (lossy: lower case, cleaned), like transformers' decode
        with ``skip_special_tokens=False`` minus its cleanup of spaces."""
        text = "".join(self.decoder[i] for i in ids)
        byte_decoder = {c: b for b, c in _bytes_to_unicode().items()}
        data = bytearray()
        for ch in text.replace("</w>", " "):
            data.append(byte_decoder[ch] if ch in byte_decoder else 32)
        return data.decode("utf-8", errors="replace").strip()

    # -- files ----------------------------------------------------------------

    def vocab_json_bytes(self) -> bytes:
        # One line, ids in order, UTF-8 (the hub's vocab.json layout).
        return json.dumps(self.encoder, ensure_ascii=False).encode("utf-8")

    def merges_txt_bytes(self) -> bytes:
        return ("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self.merges)).encode("utf-8")


_DEFAULT: Optional[ClipTokenizer] = None
_DEFAULT_LOCK = threading.Lock()


def default_tokenizer() -> ClipTokenizer:
    """Process-wide tokenizer from the bundled merges file (loaded once, ~0.3 s)."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = ClipTokenizer()
    return _DEFAULT


# --- Hugging Face folder -------------------------------------------------------


def _added_token(content: str) -> dict:
    return {
        "__type": "AddedToken",
        "content": content,
        "lstrip": False,
        "normalized": True,
        "rstrip": False,
        "single_word": False,
    }


# Same content as the hub's openai/clip-vit-large-patch14 files (legacy format,
# keys sorted, 2-space indent so the bytes are deterministic).
_TOKENIZER_CONFIG = {
    "add_prefix_space": False,
    "bos_token": _added_token(BOS_TOKEN),
    "do_lower_case": True,
    "eos_token": _added_token(EOS_TOKEN),
    "errors": "replace",
    "model_max_length": MODEL_MAX_LENGTH,
    "name_or_path": HF_TOKENIZER_NAME,
    "pad_token": EOS_TOKEN,
    "special_tokens_map_file": "./special_tokens_map.json",
    "tokenizer_class": "CLIPTokenizer",
    "unk_token": _added_token(EOS_TOKEN),
}


def _special_token(content: str) -> dict:
    return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


_SPECIAL_TOKENS_MAP = {
    "bos_token": _special_token(BOS_TOKEN),
    "eos_token": _special_token(EOS_TOKEN),
    "pad_token": EOS_TOKEN,
    "unk_token": _special_token(EOS_TOKEN),
}


def _json_bytes(obj: dict) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _write_atomic(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def hf_tokenizer_files(tokenizer: Optional[ClipTokenizer] = None) -> dict[str, bytes]:
    """File name -> exact bytes of the folder ``CLIPTokenizer.from_pretrained`` loads."""
    tok = tokenizer or default_tokenizer()
    return {
        "merges.txt": tok.merges_txt_bytes(),
        "special_tokens_map.json": _json_bytes(_SPECIAL_TOKENS_MAP),
        "tokenizer_config.json": _json_bytes(_TOKENIZER_CONFIG),
        "vocab.json": tok.vocab_json_bytes(),
    }


def write_hf_tokenizer_dir(dest_dir: str | os.PathLike, tokenizer: Optional[ClipTokenizer] = None) -> Path:
    """Write vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json
    (deterministic bytes) into ``dest_dir`` (created if needed); return its path."""
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in hf_tokenizer_files(tokenizer).items():
        _write_atomic(dest / name, data)
    return dest


def sd_scripts_tokenizer_path(cache_dir: str | os.PathLike) -> Path:
    """Where sd-scripts' load_tokenizer looks with ``--tokenizer_cache_dir``:
    ``os.path.join(cache_dir, "openai/clip-vit-large-patch14".replace("/", "_"))``."""
    return Path(cache_dir) / HF_TOKENIZER_NAME.replace("/", "_")


#: SDXL's second tokenizer (sdxl_train_util.TOKENIZER2_PATH): the same BPE vocabulary and merges as CLIP-L, padded
#: with "!" (sd-scripts then sets its pad_token_id to 0, the id of "!").
SDXL_TOKENIZER2_NAME = "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"


def write_sd_scripts_tokenizer_cache(cache_dir: str | os.PathLike, tokenizer: Optional[ClipTokenizer] = None) -> Path:
    """Populate ``cache_dir`` for sd-scripts ``--tokenizer_cache_dir``: the SD1.x/SDXL CLIP-L tokenizer and SDXL's
    second (bigG) tokenizer; returns ``cache_dir/openai_clip-vit-large-patch14``."""
    first = write_hf_tokenizer_dir(sd_scripts_tokenizer_path(cache_dir), tokenizer)
    second = Path(cache_dir) / SDXL_TOKENIZER2_NAME.replace("/", "_")
    second.mkdir(parents=True, exist_ok=True)
    for name, data in hf_tokenizer_files(tokenizer).items():
        if name == "special_tokens_map.json":
            data = _json_bytes({**_SPECIAL_TOKENS_MAP, "pad_token": "!"})
        elif name == "tokenizer_config.json":
            data = _json_bytes({**_TOKENIZER_CONFIG, "pad_token": "!", "name_or_path": SDXL_TOKENIZER2_NAME})
        _write_atomic(second / name, data)
    return first


# --- caption budgets ------------------------------------------------------------


def caption_token_count(caption: str, tokenizer: Optional[ClipTokenizer] = None) -> int:
    """Tokens of ``caption`` as sd-scripts counts them, without BOS/EOS."""
    return (tokenizer or default_tokenizer()).count_tokens(caption)


def caption_budget(max_token_length: Optional[int] = None) -> int:
    """Content tokens sd-scripts keeps for ``--max_token_length`` (None -> 75;
    150/225 -> that many, processed as 75-token chunks)."""
    if max_token_length is None:
        return CHUNK_TOKENS
    if max_token_length not in (75, 150, 225):
        raise ValueError(f"max_token_length must be None, 75, 150 or 225, not {max_token_length!r}")
    return max_token_length


def caption_fits(caption: str, max_token_length: Optional[int] = None, tokenizer: Optional[ClipTokenizer] = None) -> bool:
    """True when no token of ``caption`` would be truncated by sd-scripts."""
    return caption_token_count(caption, tokenizer) <= caption_budget(max_token_length)
