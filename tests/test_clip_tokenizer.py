"""Tests for orchestrator.clip_tokenizer (pure-Python CLIP BPE tokenizer).

The parity tests need ``transformers`` (the tokenizer part works without torch)
and, for the ftfy path, ``ftfy``; they are skipped where those are missing.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
import unicodedata

import pytest

from orchestrator import clip_tokenizer as ct
from orchestrator.clip_tokenizer import BOS_ID, EOS_ID, VOCAB_SIZE, ClipTokenizer

BPE_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"


@pytest.fixture(scope="module")
def tok() -> ClipTokenizer:
    return ct.default_tokenizer()


@pytest.fixture(scope="module")
def tok_ftfy() -> ClipTokenizer:
    pytest.importorskip("ftfy")
    return ClipTokenizer(use_ftfy=True)


@pytest.fixture(scope="module")
def tok_plain() -> ClipTokenizer:
    return ClipTokenizer(use_ftfy=False)


# --- basics -------------------------------------------------------------------


def test_bundled_merges_file_is_the_expected_one():
    assert hashlib.sha256(ct.BPE_PATH.read_bytes()).hexdigest() == BPE_SHA256


def test_vocab_size_and_special_ids(tok):
    assert VOCAB_SIZE == 49408 and BOS_ID == 49406 and EOS_ID == 49407
    assert len(tok.encoder) == 49408 == tok.vocab_size
    assert tok.encoder["<|startoftext|>"] == tok.bos_id == 49406
    assert tok.encoder["<|endoftext|>"] == tok.eos_id == 49407
    assert sorted(tok.encoder.values()) == list(range(49408))
    assert len(tok.merges) == 48894
    assert tok.encoder["!"] == 0 and tok.encoder["!</w>"] == 256
    assert tok.encoder["".join(tok.merges[0])] == 512


def test_default_tokenizer_is_cached():
    assert ct.default_tokenizer() is ct.default_tokenizer()


# Expected ids below were obtained from transformers 4.54.1
# ``CLIPTokenizer.from_pretrained(write_hf_tokenizer_dir(tmp))`` with ftfy 6.3.1
# installed, as ``tokenizer(text, add_special_tokens=False).input_ids``.
# For these strings transformers' ftfy and non-ftfy paths agree, so they must
# hold whichever cleaning path this environment uses.
KNOWN_BOTH_PATHS = [
    (
        "pixel art, 24x24, portrait of bespoke punk lad",
        [13241, 794, 267, 273, 275, 343, 273, 275, 267, 5352, 539, 15612, 7246, 10707],
    ),
    # hex colours: '#', then letter runs, then every digit on its own
    ("#a76857", [258, 320, 278, 277, 279, 276, 278]),
    ("#FF00FF background", [258, 1304, 271, 271, 1304, 5994]),
    (
        "Pixel Art,   32x32\tsprite\n\n(#1a1c2c, #5d275d)",
        [13241, 794, 267, 274, 273, 343, 274, 273, 32544, 6229, 272, 320, 272, 322, 273, 322, 267, 258, 276, 323, 273, 278, 276, 323, 264],
    ),
    ("1234567890", [272, 273, 274, 275, 276, 277, 278, 279, 280, 271]),
    # accents: precomposed and combining forms both NFC-normalise to 'é'
    ("café naïve résumé", [15304, 1097, 35689, 563, 29106, 7054, 4166]),
    ("Café", [15304]),
    ("cafe\u0301", [15304]),
    # emoji fall back to byte-level pieces
    ("I ❤️ pixel art 👾", [328, 1752, 13241, 794, 964, 378]),
    ("", []),
    ("   ", []),
    # U+0345 is dropped by CLIP's IGNORECASE pattern
    ("hello\u0345world", [3306, 1002]),
    # contractions match case-insensitively, long s included
    ("'S 'LL 'ſ", [568, 1342, 6, 129, 379]),
    # literal special tokens are split out before cleaning
    ("a <|endoftext|> b", [320, 49407, 321]),
    ("<|<|startoftext|>", [27, 347, 49406]),
    ("<|ENDOFTEXT|>", [49407]),
]

# Only on transformers' ftfy path (what sd-scripts uses): ftfy unescapes HTML,
# uncurls quotes, folds ligatures/full-width forms; ZWJ survives.
KNOWN_FTFY = [
    ("fish &amp; chips &lt;3 &#39;quoted&#39;", [2759, 261, 8855, 283, 274, 262, 27706, 262]),
    ("don’t stop", [847, 713, 1691]),
    ("ﬁne ＡＢＣ１２３", [3797, 5334, 272, 273, 274]),
    ("👨\u200d👩\u200d👧", [25023, 26304, 964, 356]),
    ("日本語のテキスト", [39121, 44353, 34002, 252, 21575, 2429, 228, 47121, 32421, 486]),
]

# transformers' non-ftfy path (BasicTokenizer): no HTML unescaping, control and
# format characters (ZWJ) removed, CJK ideographs split off.
KNOWN_PLAIN = [
    (
        "fish &amp; chips &lt;3 &#39;quoted&#39;",
        [2759, 261, 6259, 282, 8855, 261, 3333, 282, 274, 5, 258, 274, 280, 282, 27706, 5, 258, 274, 280, 282],
    ),
    ("don’t stop", [847, 728, 503, 339, 1691]),
    ("👨\u200d👩\u200d👧", [18966, 18800, 964, 356]),
    ("日本語のテキスト", [37156, 19277, 361, 34002, 508, 21575, 2429, 228, 47121, 32421, 486]),
]


@pytest.mark.parametrize("text,ids", KNOWN_BOTH_PATHS)
def test_known_encodings(tok, tok_plain, text, ids):
    assert tok.encode(text) == ids
    assert tok_plain.encode(text) == ids
    assert tok.count_tokens(text) == len(ids) == ct.caption_token_count(text)
    assert tok.encode_with_special(text) == [BOS_ID, *ids, EOS_ID]


@pytest.mark.parametrize("text,ids", KNOWN_FTFY)
def test_known_encodings_ftfy(tok_ftfy, text, ids):
    assert tok_ftfy.encode(text) == ids


@pytest.mark.parametrize("text,ids", KNOWN_PLAIN)
def test_known_encodings_without_ftfy(tok_plain, text, ids):
    assert tok_plain.encode(text) == ids


def test_hex_codes_split_like_clip(tok):
    assert tok.tokenize("#a76857") == ["#</w>", "a</w>", "7</w>", "6</w>", "8</w>", "5</w>", "7</w>"]
    # (from transformers' CLIPTokenizer.tokenize, as KNOWN_BOTH_PATHS)
    assert tok.tokenize("#ffffff, #000") == ["#</w>", "ff", "ff", "ff</w>", ",</w>", "#</w>", "0</w>", "0</w>", "0</w>"]
    assert tok.encode("#ffffff, #000") == [258, 1021, 1021, 1304, 267, 258, 271, 271, 271]
    # every digit is its own token: an all-digit colour costs 7 tokens with '#'
    assert tok.encode("#123456") == [258, 272, 273, 274, 275, 276, 277]


def test_whitespace_and_case_do_not_matter(tok):
    assert tok.encode("  Pixel\t\tART \n") == tok.encode("pixel art")


def test_decode_roundtrip_of_cleaned_text(tok):
    assert tok.decode(tok.encode("Pixel art, #A76857 café!")) == "pixel art , # a 7 6 8 5 7 café !"


# --- caption budgets ------------------------------------------------------------


def test_caption_budget():
    assert ct.caption_budget() == 75
    assert ct.caption_budget(75) == 75
    assert ct.caption_budget(150) == 150
    assert ct.caption_budget(225) == 225
    with pytest.raises(ValueError, match="must be None, 75, 150 or 225, not 100"):
        ct.caption_budget(100)


def test_caption_fits(tok):
    caption = ", ".join(["pixel art"] * 25)  # 25*2 + 24 commas = 74 tokens
    assert ct.caption_token_count(caption) == 74
    assert ct.caption_fits(caption)
    longer = caption + ", lad"  # 76 tokens
    assert ct.caption_token_count(longer) == 76
    assert not ct.caption_fits(longer)
    assert ct.caption_fits(longer, 150)


# --- written tokenizer folder ----------------------------------------------------


def test_hf_dir_contents(tmp_path):
    out = ct.write_hf_tokenizer_dir(tmp_path / "tok")
    assert out == tmp_path / "tok"
    assert sorted(p.name for p in out.iterdir()) == [
        "merges.txt",
        "special_tokens_map.json",
        "tokenizer_config.json",
        "vocab.json",
    ]
    merges = (out / "merges.txt").read_text(encoding="utf-8").split("\n")
    assert merges[0] == "#version: 0.2"
    assert merges[1] == "i n" and merges[-1] == "" and len(merges) == 48894 + 2
    vocab = json.loads((out / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 49408 and vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    cfg = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert cfg["model_max_length"] == 77
    assert cfg["bos_token"]["content"] == "<|startoftext|>"
    assert cfg["eos_token"]["content"] == cfg["unk_token"]["content"] == cfg["pad_token"] == "<|endoftext|>"
    assert cfg["do_lower_case"] is True and cfg["errors"] == "replace" and cfg["add_prefix_space"] is False
    assert cfg["tokenizer_class"] == "CLIPTokenizer"
    stm = json.loads((out / "special_tokens_map.json").read_text(encoding="utf-8"))
    assert stm["bos_token"]["content"] == "<|startoftext|>" and stm["pad_token"] == "<|endoftext|>"


def test_written_files_are_byte_identical(tmp_path):
    a = ct.write_hf_tokenizer_dir(tmp_path / "a")
    b = ct.write_hf_tokenizer_dir(tmp_path / "b", ClipTokenizer())
    ct.write_hf_tokenizer_dir(tmp_path / "a")  # rewrite in place
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert not [p for p in a.iterdir() if p.name.endswith(".tmp")]


def test_sd_scripts_cache_path(tmp_path):
    # sd-scripts: os.path.join(args.tokenizer_cache_dir, "openai/clip-vit-large-patch14".replace("/", "_"))
    out = ct.write_sd_scripts_tokenizer_cache(tmp_path)
    assert out == tmp_path / "openai_clip-vit-large-patch14"
    assert (out / "vocab.json").is_file() and (out / "merges.txt").is_file()


# --- performance ------------------------------------------------------------------


def _pixel_captions(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    words = (
        "pixel art portrait of a bespoke punk lad with hoodie glasses cap blue background sprite 8-bit "
        "palette retro game character wearing red bandana earring mohawk smoking pipe beard smile"
    ).split()
    caps = []
    for _ in range(n):
        parts: list[str] = []
        while len(", ".join(parts)) < 320:
            if rng.random() < 0.2:
                parts.append(f"#{rng.randrange(16**6):06x}")
            else:
                parts.append(" ".join(rng.choice(words) for _ in range(rng.randint(1, 4))))
        caps.append(", ".join(parts)[:320])
    return caps


def test_throughput_10k_captions():
    tok = ClipTokenizer()
    caps = _pixel_captions(10_000)
    start = time.perf_counter()
    total = sum(tok.count_tokens(c) for c in caps)
    elapsed = time.perf_counter() - start
    assert total > 500_000
    assert elapsed < 10.0, f"10k captions took {elapsed:.2f}s"  # ~0.5 s on a laptop


# --- parity with transformers' CLIPTokenizer ----------------------------------------


def _parity_corpus() -> list[str]:
    """A few hundred deterministic, varied strings."""
    rng = random.Random(1234)
    fixed = [
        "",
        " ",
        "\n\t\r",
        "pixel art, 24x24, portrait of bespoke punk lad",
        "pixel art, 24x24, portrait of bespoke punk lad, #a76857 skin, #000000 outline, #ffffff bg",
        "PIXEL ART 32X32 Sprite (#1A1C2C, #5D275D, #B13E53, #EF7D57, #FFCD75)",
        "punk lad,   cap:  red;  eyes: 'blue' -- \"shades\"!!! ... ???",
        "He's here, they're there, we've gone, I'm in, you'll see, he'd go, isn't it, DON'T, O'NEILL",
        "don’t ‘quote’ “me” — en–dash … ellipsis",
        "fish &amp; chips &lt;3 &gt; &quot;x&quot; &#39;y&#39; &eacute; &nbsp; &AMP; &#x41; &copy;",
        "cafÃ© mojibake â€™ and â€œquotedâ€\x9d text",
        "café naïve résumé Ångström Œuvre ßtraße İstanbul ıi ǅ ǈ ﬁﬂﬀ",
        "cafe\u0301 nai\u0308ve combining\u0303 marks\u0345 greek ᾳ ΣΑΣ σας",
        "emoji 😀😃 👍🏽 👨‍👩‍👧‍👦 ❤️ 🏳️‍🌈 🇫🇷 ✨ 👾 🕹️",
        "日本語のテキスト, 中文字符, 한국어 텍스트, ไทย, हिन्दी, العربية, עברית, Ελληνικά, Русский",
        "ＦＵＬＬＷＩＤＴＨ　ｔｅｘｔ １２３！？",
        "½ ¾ ² ³ ① Ⅻⅻ ٣ ४ 𝟙𝟚 𝐀𝐁",
        "control\x00chars\x01\x07\x1b[31mred\x1b[0m\x7f\x85\x9d\u200b\u200d\ufeff\ufffd end",
        "spaces\u00a0nbsp\u2002en\u2003em\u3000ideographic\u2028line\u2029para\x1c\x1d\x1e\x1f",
        "a <|startoftext|> b <|endoftext|> c <|ENDOFTEXT|> d <|<|endoftext|> <|endoftext|><|endoftext|>",
        "'s 'S 'ſ ''s '''re 're're 'll'll",
        "tabs\tand\nnewlines\r\nand   many      spaces",
        "1234567890 3.14159 -42 +7 1e10 0x1F 24x24px 1920x1080 v1.5 sd-xl",
        "!!!???...,,,;;;:::---___===+++***&&&%%%$$$###@@@^^^~~~```|||\\\\\\///",
        "<html><body><p class=\"x\">Hello</p></body></html>",
        "https://example.com/path?query=1&b=2#frag user@example.com",
        "\U0001f600" * 20,
        "x" * 300,
        "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    ]
    words = (
        "pixel art portrait of a bespoke punk lad with hoodie glasses cap blue background sprite "
        "8-bit palette retro game character zombie ape alien female male smile frown earring"
    ).split()
    extras = list(" ,.;:!?'\"#&-_/()[]{}<>|@*+=~^%$\t\n") + [
        "&amp;", "&lt;", "&#39;", "é", "ñ", "ß", "ſ", "İ", "\u0345", "\u0301", "😀", "👍🏽", "\u200d",
        "中", "ア", "한", "ไ", "ह", "٣", "½", "Ⅻ", "Ａ", "１", "’", "“", "ﬁ", "\u00a0", "\u3000",
        "\x00", "\x1f", "\x85", "<|endoftext|>", "'s", "'LL", "#a76857", "#FFF",
    ]
    corpus = list(fixed)
    for _ in range(200):  # caption-like
        parts = []
        for _ in range(rng.randint(1, 40)):
            r = rng.random()
            if r < 0.6:
                parts.append(rng.choice(words))
            elif r < 0.75:
                parts.append(f"#{rng.randrange(16**6):06x}" if rng.random() < 0.5 else f"#{rng.randrange(16**6):06X}")
            elif r < 0.85:
                parts.append(str(rng.randint(0, 10**rng.randint(1, 6))))
            else:
                parts.append(rng.choice(extras))
        corpus.append(rng.choice([", ", ",", " ", "  ", " , "]).join(parts))
    for _ in range(100):  # character soup
        corpus.append("".join(rng.choice(extras + words) for _ in range(rng.randint(1, 50))))
    for _ in range(50):  # arbitrary code points (surrogates excluded)
        chars = []
        while len(chars) < rng.randint(1, 30):
            cp = rng.randrange(0x110000)
            if not 0xD800 <= cp <= 0xDFFF:
                chars.append(chr(cp))
        corpus.append("".join(chars))
    corpus.append(" ".join(corpus[:40]) * 3)  # very long text
    return corpus


def _load_reference(tmp_path, monkeypatch, ftfy: bool):
    transformers = pytest.importorskip("transformers")
    if ftfy:
        pytest.importorskip("ftfy")
    else:
        monkeypatch.setitem(sys.modules, "ftfy", None)  # make `import ftfy` fail
    transformers.logging.set_verbosity_error()
    ref = transformers.CLIPTokenizer.from_pretrained(str(ct.write_hf_tokenizer_dir(tmp_path / "hf")))
    assert (ref.fix_text is not None) == ftfy
    return ref


def _assert_parity(ref, mine: ClipTokenizer):
    assert ref.vocab_size == VOCAB_SIZE and len(ref) == VOCAB_SIZE
    assert ref.bos_token_id == BOS_ID and ref.eos_token_id == EOS_ID
    assert ref.pad_token_id == EOS_ID and ref.unk_token_id == EOS_ID and ref.model_max_length == 77
    corpus = _parity_corpus()
    assert len(corpus) > 300
    mismatches = []
    for text in corpus:
        expected = ref(text, add_special_tokens=False).input_ids
        if mine.encode(text) != expected:
            mismatches.append(text)
        elif ref(text).input_ids != mine.encode_with_special(text):
            mismatches.append(text)
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[0]!r}"
    # what sd-scripts does: pad/truncate to max_length (75 + 2 per chunk)
    for text in corpus[:50]:
        for max_len in (77, 152, 227):
            got = ref(text, padding="max_length", truncation=True, max_length=max_len).input_ids
            ids = mine.encode(text)[: max_len - 2]
            assert got == [BOS_ID, *ids, EOS_ID] + [EOS_ID] * (max_len - 2 - len(ids))


def test_parity_with_transformers_ftfy(tmp_path, monkeypatch, tok_ftfy):
    _assert_parity(_load_reference(tmp_path, monkeypatch, ftfy=True), tok_ftfy)


def test_parity_with_transformers_without_ftfy(tmp_path, monkeypatch, tok_plain):
    _assert_parity(_load_reference(tmp_path, monkeypatch, ftfy=False), tok_plain)


def test_tokenize_matches_transformers_strings(tmp_path, monkeypatch, tok_ftfy):
    ref = _load_reference(tmp_path, monkeypatch, ftfy=True)
    for text in _parity_corpus()[:60]:
        assert tok_ftfy.tokenize(text) == ref.tokenize(text)


def test_character_classes_match_regex_module():
    """Every code point Python knows is classified as the regex module does."""
    regex = pytest.importorskip("regex")
    pat = regex.compile(
        r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
        regex.IGNORECASE,
    )
    chars = [
        chr(cp)
        for cp in range(0x110000)
        if unicodedata.category(chr(cp)) not in ("Cn", "Cs")
    ]
    for glue in ("", " ", "a", "1", "'", "#", "\u0345", "\U0001f600", "\U0001d400", "\U0001d7ce"):
        text = glue.join(chars)
        expected = pat.findall(text)
        assert ct._findall(text) == expected, repr(glue)
        if glue in ("", " "):  # the literal (slow) translation of CLIP's pattern
            assert ct._PAT.findall(text) == expected, repr(glue)
        bmp = glue.join(c for c in chars if ord(c) < 0x10000)
        assert ct._findall(bmp) == pat.findall(bmp), repr(glue)
    assert ct._whitespace_clean("\x1c a \u2028 b \x85") == regex.sub(r"\s+", " ", "\x1c a \u2028 b \x85").strip()


def test_sd_scripts_cache_has_the_sdxl_second_tokenizer(tmp_path):
    from orchestrator.clip_tokenizer import write_sd_scripts_tokenizer_cache

    first = write_sd_scripts_tokenizer_cache(tmp_path)
    second = tmp_path / "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"
    assert first.name == "openai_clip-vit-large-patch14"
    assert (second / "vocab.json").read_bytes() == (first / "vocab.json").read_bytes()
    assert json.loads((second / "special_tokens_map.json").read_text())["pad_token"] == "!"
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.CLIPTokenizer.from_pretrained(str(second))
    assert tokenizer.pad_token == "!" and tokenizer.pad_token_id == 0
