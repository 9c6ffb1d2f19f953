#!/usr/bin/env bash
# Idempotent set-up used by `make repro` and `make test` (README): WordNet from Debian when apt is
# available, a virtual environment with the project and its dependencies, nothing else.
#   OVLAB_VENV   where the virtual environment lives (default: .venv in the checkout)
#   OVLAB_PYTHON the interpreter that creates it (default: python3)
#   OVLAB_UNLOCKED=1  install pyproject.toml's version ranges instead of requirements.lock
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${OVLAB_VENV:-.venv}"
PY="${OVLAB_PYTHON:-python3}"

log() { printf '[setup] %s\n' "$*" >&2; }
# pip, quiet: drop the machine-local index notices ("Location ... is ignored") and build-backend banners.
# A failing pip still fails the script (pipefail + errexit).
pipq() {
  "$VENV/bin/python" -m pip -q "$@" 2>&1 | { grep -v -e "is ignored: it is neither" -e "^  " -e "^$" >&2 || true; }
}

# 1. WordNet 3.0 offline (nltk's own data is used instead when a user has it).
if [ ! -f /usr/share/wordnet/data.noun ] || [ ! -f /usr/share/wordnet/index.sense ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
    if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
      log "installing Debian's WordNet 3.0 (wordnet-base, wordnet-sense-index)"
      $SUDO apt-get update -qq >/dev/null || log "apt-get update failed; trying the install anyway"
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        wordnet-base wordnet-sense-index >/dev/null
    else
      log "WordNet is missing and apt needs root: run 'sudo apt-get install wordnet-base wordnet-sense-index'"
    fi
  else
    log "no apt-get: put nltk's 'wordnet' corpus on \$NLTK_DATA (see README)"
  fi
fi

# 2. The virtual environment and the dependencies: the exact versions of requirements.lock (every machine
#    gets the same ones, so a fresh `make repro` reproduces the committed dvc.lock), re-installed only when
#    pyproject.toml or the lock changes. OVLAB_UNLOCKED=1 resolves pyproject.toml's ranges instead
#    (`make lock` does that in a scratch venv and rewrites the lock from it).
if [ ! -x "$VENV/bin/python" ]; then
  log "creating the virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
locked=""; [ -z "${OVLAB_UNLOCKED:-}" ] && [ -f requirements.lock ] && locked=1
hash=$(cat pyproject.toml ${locked:+requirements.lock} | sha256sum | cut -c1-16)
stamp="$VENV/.ovlab-deps-${locked:+locked-}$hash"
if [ ! -f "$stamp" ]; then
  log "installing ovlab and its dependencies into $VENV (${locked:+the versions of requirements.lock; }torch from PyPI: a large download the first time)"
  pipq install --upgrade pip
  if [ -n "$locked" ]; then
    pipq install -r requirements.lock
    pipq install --no-deps -e ".[dev]"
  else
    pipq install -e ".[dev]"
  fi
  rm -f "$VENV"/.ovlab-deps-*
  touch "$stamp"
fi
# A venv shared between checkouts (CI) must import this checkout's ovlab.
here=$(pwd -P)
# Asked from a neutral folder: `python -c` puts the current folder first on sys.path, which would
# always find this checkout and hide an install that points at another one.
where=$(cd / && "$VENV/bin/python" -c 'import ovlab, os; print(os.path.dirname(os.path.dirname(os.path.realpath(ovlab.__file__))))' 2>/dev/null || true)
if [ "$where" != "$here" ]; then
  log "pointing the editable install at $here"
  pipq install --no-deps -e .
fi
# 3. The English POS tagger of the grounding loss's caption nouns, offline (ovlab/vocab/tagger.py):
#    nltk's own data when a user has it, else assembled once into the ovlab cache from the
#    textblob-aptagger wheel installed above. A failure is reported, not fatal (only grounding needs it).
tagger_marker="${OVLAB_CACHE:-$HOME/.cache/ovlab}/nltk_data/taggers/averaged_perceptron_tagger_eng/.ovlab-assembled-from"
if [ ! -f "$tagger_marker" ]; then
  if tagger_at=$("$VENV/bin/python" -c 'from ovlab.vocab.tagger import find_tagger; print(*find_tagger())' 2>&1); then
    log "POS tagger: $tagger_at"
  else
    log "no POS tagger (caption nouns of the grounding loss will fail): $tagger_at"
  fi
fi
# 4. JupyterLab (`make lab`): stage notebooks are saved clean by ovlab's pre-save hook, for any `jupyter lab`
#    started from this venv (its sys-prefix Jupyter config).
jconf="$VENV/etc/jupyter/jupyter_server_config.d"
if [ ! -f "$jconf/ovlab.json" ]; then
  mkdir -p "$jconf"
  printf '{"FileContentsManager": {"pre_save_hook": "ovlab.notebook.pre_save_hook"}}\n' > "$jconf/ovlab.json"
fi
# 5. Headless Chromium + chromedriver for the real-browser tests (tests/test_browser.py skips without them).
if ! command -v chromedriver >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    log "installing Debian's chromium and chromium-driver (browser tests)"
    { $SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        --no-install-recommends chromium chromium-driver >/dev/null; } || log "chromium install failed: browser tests will skip"
  fi
fi
log "ready: $VENV ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
