#!/usr/bin/env bash
# Regenerates appliance/data/sample.wav, the built-in demo audio (`appliance send` with no
# file, and the listener's self-test): about 8 s of espeak-ng speech as a plain PCM WAV,
# 8000 Hz, 16-bit signed, mono (the appliance's wire format), about 128 KB.
#
# Needs: apt-get install espeak-ng sox
# Deterministic: the same espeak-ng and sox versions give the same bytes (sox -D turns off
# dither, which is random otherwise). Made with espeak-ng 1.51 and sox 14.4.2 (Debian 12).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# -m: the text is SSML, so the pause between the sentences can be set.
espeak-ng -v en-us -s 150 -m -w "$work/speech.wav" \
    '<speak>Hello from your network audio appliance. <break time="500ms"/> If you can hear this, the sender, the network and the player are all working.</speak>'

sox -D "$work/speech.wav" -r 8000 -c 1 -b 16 -e signed-integer "$repo_root/appliance/data/sample.wav"
