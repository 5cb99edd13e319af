#!/usr/bin/env bash
# Debian packages the optional parts use: festival + the Telugu voice (an extra built-in speaker: festvox-te-nsk,
# and festival-te, which holds the voice's Telugu phone set and lexicon; festvox-te-nsk only *recommends* it, so it
# is named here), the hunspell Telugu word list (training text), chromium (report screenshots, the browser demo test).
#
# Installs what is missing when it can (root, or sudo without a password); otherwise says what is missing and goes
# on: the tests that need a missing package skip with a reason. Then it proves festival speaks one Telugu sentence,
# or says exactly what is broken (the built-in data sets are then built without the festival voice, and say so).
#
#   scripts/install-system-deps.sh           install what is missing, then check festival (exit 0 either way)
#   scripts/install-system-deps.sh --check   only check festival: exit 0 if it speaks Telugu, 1 if not
set -u
VOICE_DIR=${S2S_FESTIVAL_VOICE_DIR:-/usr/share/festival/voices/telugu/telugu_NSK_diphone}  # (tests point these
PHONESET=${S2S_FESTIVAL_PHONESET:-/usr/share/festival/telugu_scm/telugu_phones.scm}         # at broken installs)
SENTENCE="నమస్కారం, మీరు ఎలా ఉన్నారు?"

# Prove festival speaks Telugu: synthesise one sentence the way harness/datasets/festival.py does.
check_festival() {
  local exe
  exe=$(command -v festival) || { echo "festival: BROKEN: festival is not installed (apt-get install festival)"; return 1; }
  if [ ! -d "$VOICE_DIR" ]; then
    echo "festival: BROKEN: the Telugu voice is missing ($VOICE_DIR; apt-get install festvox-te-nsk)"
    return 1
  fi
  if [ ! -f "$PHONESET" ]; then
    echo "festival: BROKEN: festival-te is missing ($PHONESET: the voice's Telugu phone set and lexicon;" \
      "apt-get install festival-te)"
    return 1
  fi
  local tmp rc log bytes
  tmp=$(mktemp -d)
  cat >"$tmp/say.scm" <<EOF
(voice_telugu_NSK_diphone)
(Parameter.set 'Int_Method 'Simple)
(set! int_simple_params '((f0_mean 115) (f0_std 15)))
(set! utt1 (Utterance Text "$SENTENCE"))
(utt.synth utt1)
(utt.save.wave utt1 "$tmp/say.wav" 'riff)
EOF
  (cd "$tmp" && timeout 120 "$exe" -b say.scm) >"$tmp/log" 2>&1
  rc=$?
  log=$(tr '\n' ' ' <"$tmp/log" | cut -c1-300)
  bytes=$(stat -c %s "$tmp/say.wav" 2>/dev/null || echo 0)
  rm -rf "$tmp"
  if [ "$rc" -ne 0 ] || [ "$bytes" -le 1000 ]; then
    local why="festival exited with $rc and wrote $bytes bytes of audio"
    case "$log" in
      *telugu_phones*|*telugu_lex*|*telugu_token*) why="$why: festival-te's files cannot be read (apt-get install --reinstall festival-te)";;
      *voice_telugu_NSK_diphone*) why="$why: the Telugu voice does not load (apt-get install --reinstall festvox-te-nsk)";;
    esac
    echo "festival: BROKEN: $why; festival said: ${log:-nothing}"
    return 1
  fi
  echo "festival: ok: speaks Telugu ($bytes bytes of audio for \"$SENTENCE\"; $exe)"
  return 0
}

if [ "${1:-}" = "--check" ]; then
  check_festival
  exit $?
fi

want=(festival festvox-te-nsk festival-te hunspell-te chromium)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "note: not a Debian system; optional packages not installed: ${missing[*]}" >&2
  else
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
    if [ "$SUDO" = none ]; then
      echo "note: cannot install ${missing[*]} (needs root); the parts that use them will be skipped" >&2
    else
      echo "installing Debian packages: ${missing[*]}"
      $SUDO apt-get update -qq >/dev/null || true
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || echo "note: apt-get could not install some of: ${missing[*]}" >&2
    fi
  fi
fi
# Loud but not fatal: without festival the built-in sets are built without its voice (and marked degraded).
check_festival >&2 || echo "note: the built-in Telugu sets will be built without the festival voice and marked" \
  "DEGRADED; make bench refuses them (make bench BENCH_ALLOW_DEGRADED=1 measures them anyway)" >&2
exit 0
