#!/usr/bin/env bash
# Start the local PostgreSQL cluster if it is down (the tests talk to a real server), make sure pgbouncer (the
# transaction-pooler test), OpenSSH's server and client (the ssh launcher test) and Chromium (the UI browser tests)
# are installed, and build the real Supabase Storage server (the artifact tests). Best effort outside CI: the tests
# say clearly what is missing.
set -u
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  if [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ] && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q pgbouncer >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q pgbouncer >/dev/null 2>&1; }) \
    || echo "note: could not install pgbouncer; the transaction-pooler test will be skipped"
fi
if { ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ]; } && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q openssh-server openssh-client >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q openssh-server openssh-client >/dev/null 2>&1; }) \
    || echo "note: could not install openssh-server; the ssh launcher tests will be skipped"
fi
# Debian's Chromium for the UI's browser tests (Playwright's own browser download does not work here).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }) \
    || echo "note: could not install chromium; the UI browser tests will be skipped"
fi
pg_isready -h 127.0.0.1 -p 5432 || echo "warning: PostgreSQL on 127.0.0.1:5432 is not answering"
# The real Supabase Storage server the artifact tests run against: built once per version outside the repository
# (about 20 s cold with a warm npm cache, nothing when built). In CI (CI=true) a failed build fails the run.
if ! bash "$(dirname "$0")/build-supabase-storage.sh" >/dev/null; then
  if [ "${CI:-}" = true ]; then
    echo "error: could not build the Supabase Storage server (above); CI runs the Supabase tests against it" >&2
    exit 1
  fi
  echo "note: could not build the Supabase Storage server; the Supabase tests will be skipped"
fi
