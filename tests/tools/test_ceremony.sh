#!/usr/bin/env bash
# tokenvault-ceremony as an officer runs it, against a fresh SoftHSM token:
# outputs, files, exit codes.
set -u
tool=$1
module=$2
dir=$(mktemp -d /tmp/tv-ceremony-XXXXXX)
cd "$dir" # ceremonies leave their transcripts in the current directory
trap 'rm -rf "$dir"' EXIT
export SOFTHSM2_CONF=$dir/softhsm2.conf
mkdir "$dir/tokens"
echo "directories.tokendir = $dir/tokens" > "$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label ceremony --so-pin so-pin-9 --pin user-pin-9 >/dev/null
(umask 077; echo user-pin-9 > "$dir/pin")
fails=0
check() { # check NAME EXPECTED_RC ACTUAL_RC
    if [ "$2" != "$3" ]; then echo "FAIL $1: exit $3, expected $2"; fails=$((fails + 1)); else echo "ok   $1"; fi
}
has() { # has NAME PATTERN FILE
    if grep -q -- "$2" "$3"; then echo "ok   $1"; else echo "FAIL $1: no '$2' in output"; cat "$3"; fails=$((fails + 1)); fi
}
run() { "$tool" --module "$module" --token ceremony --pin-file "$dir/pin" "$@"; }

run --dek "$dir/dek" init >"$dir/init.out" 2>&1; check "init" 0 $?
for k in vault-kek-v1 vault-fingerprint vault-session-mac vault-audit-sign vault-dek-v1; do
    has "init prints $k" "^$k .*KCV [0-9A-F]\{6\}" "$dir/init.out"
done
has "KEK wraps only" "usage:     !encrypt !decrypt !sign !verify wrap unwrap !derive" "$dir/init.out"
has "keys extractable only under a trusted key" "sensitive extractable always-sensitive !never-extractable wrap-with-trusted" "$dir/init.out"
if grep -q UNSAFE "$dir/init.out"; then echo "FAIL init: a key is unsafe"; fails=$((fails + 1)); fi
[ "$(stat -c %a "$dir/dek")" = 600 ]; check "DEK file is 0600" 0 $?
dek_kcv=$(awk '/^vault-dek-v1/ {print $5}' "$dir/init.out")

run --dek "$dir/dek" keys >"$dir/keys.out" 2>&1; check "keys" 0 $?
has "keys shows the DEK with its KCV" "^vault-dek-v1 .*KCV $dek_kcv" "$dir/keys.out"
kek_kcv=$(awk '/^vault-kek-v1/ {print $5}' "$dir/init.out")
has "KEK KCV is stable" "^vault-kek-v1 .*KCV $kek_kcv" "$dir/keys.out"

run audit-key >"$dir/audit.pem" 2>&1; check "audit-key" 0 $?

# The init ceremony left a signed transcript here: 0600, what was printed,
# who and when; it verifies offline with the audit key, and not once altered.
t=$(ls "$dir"/ceremony-init-*.txt 2>/dev/null | head -n1)
[ -n "$t" ]; check "init wrote a transcript" 0 $?
[ "$(stat -c %a "$t")" = 600 ]; check "transcript is 0600" 0 $?
has "transcript names the ceremony" "^ceremony: init" "$t"
has "transcript holds the KCVs" "^vault-kek-v1 .*KCV [0-9A-F]\{6\}" "$t"
has "transcript says the result" "^result: done (exit 0)" "$t"
has "transcript is signed" "^signature: ecdsa-p256-sha256 vault-audit-sign " "$t"
"$tool" --in "$t" --pubkey "$dir/audit.pem" transcript-verify >"$dir/tv.out" 2>&1
check "transcript verifies" 0 $?
sed 's/^result: done/result: DONE/' "$t" > "$dir/altered.txt"
"$tool" --in "$dir/altered.txt" --pubkey "$dir/audit.pem" transcript-verify >"$dir/tv.out" 2>&1
check "altered transcript refused" 1 $?
has "altered transcript says so" "does NOT verify" "$dir/tv.out"
run --transcript "$dir/keys.txt" keys >/dev/null 2>&1; check "keys with --transcript" 0 $?
has "an explicit transcript path is used" "^ceremony: keys" "$dir/keys.txt"
run --transcript "$dir/keys.txt" keys >/dev/null 2>&1; check "a transcript is never overwritten" 1 $?
openssl pkey -pubin -in "$dir/audit.pem" -noout -text 2>/dev/null | grep -q "NIST CURVE: P-256"
check "audit-key is an EC P-256 public key in PEM" 0 $?

run --dek "$dir/dek2" init >/dev/null 2>"$dir/err"; check "init twice refused" 3 $?
has "init twice says why" "HSM_ERR_EXISTS" "$dir/err"
run --dek "$dir/dek" init >/dev/null 2>&1; check "DEK file never overwritten" 3 $?

# Change the first hex digit of the wrapped DEK (to 1 if it is 0, else to 0:
# a fixed replacement would leave a DEK that starts with it unchanged).
if [ "$(head -c1 "$dir/dek")" = 0 ]; then flip=1; else flip=0; fi
sed -i "s/^./$flip/" "$dir/dek"
run --dek "$dir/dek" keys >/dev/null 2>"$dir/err"; check "tampered DEK refused" 3 $?
has "tampered DEK says verify" "HSM_ERR_VERIFY" "$dir/err"

run --label wallet-ec-1 --kind ec wallet-keygen >"$dir/w.out" 2>&1; check "wallet-keygen ec" 0 $?
has "wallet key derive only" "^wallet-ec-1 .*ec-derive" "$dir/w.out"
has "wallet key public SPKI" "public key (SPKI, base64): MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE" "$dir/w.out"
run --label wallet-x --kind dsa wallet-keygen >/dev/null 2>&1; check "wallet-keygen bad kind" 2 $?

run probe >"$dir/probe.out" 2>&1; check "probe" 0 $?
has "probe shows RSA fallback" "RSA-OAEP-SHA256:  host-decode" "$dir/probe.out"

# pin-split without --share-dir: each share on the terminal itself, one
# officer at a time (two Enters each), never on standard output. A pseudo-
# terminal (script(1), util-linux, Essential on Debian) stands in for the
# officers' screen and keyboard.
command -v script >/dev/null; check "script(1) is installed" 0 $?
{
    printf '\n\n\n\n\n\n' | script -qefc "$tool --module $module --token ceremony --pin-file $dir/pin \
        --threshold 2 --shares 3 --set-file $dir/tty.set --keep-pin pin-split" "$dir/tty.log" \
        >/dev/null 2>&1
    check "pin-split on the terminal" 0 $?
    has "share 1 called alone" "Share 1 of 3. Only the officer who keeps it" "$dir/tty.log"
    has "share 3 called alone" "Share 3 of 3" "$dir/tty.log"
    has "screen cleared between officers" $'\033\[H\033\[2J' "$dir/tty.log"
    grep -a -o 'tokenvault-share-1:[A-Za-z0-9+/=:_-]*' "$dir/tty.log" | tr -d '\r' >"$dir/tty.shares"
    [ "$(wc -l <"$dir/tty.shares")" = 3 ]; check "three shares shown" 0 $?
    n=0
    while read -r share; do
        n=$((n + 1))
        (umask 077; printf '%s\n' "$share" >"$dir/tty-share-$n.txt")
        "$tool" --share "$dir/tty-share-$n.txt" --set-file "$dir/tty.set" share-check \
            >"$dir/tty-check.out" 2>&1
        check "shown share $n belongs to the set" 0 $?
    done <"$dir/tty.shares"
    tr=$(ls "$dir"/ceremony-pin-split-*.txt | tail -n 1)
    if grep -q 'tokenvault-share-1:' "$tr"; then
        echo "FAIL a share reached the transcript"; fails=$((fails + 1))
    else
        echo "ok   no share in the transcript"
    fi
}

chmod 0644 "$dir/pin"
run keys >/dev/null 2>"$dir/err"; check "world-readable PIN file refused" 3 $?
has "PIN error names the mode" "mode 644" "$dir/err"
chmod 0600 "$dir/pin"
"$tool" --module "$module" --token ceremony keys >/dev/null 2>&1; check "no PIN file is usage" 2 $?
run frobnicate >/dev/null 2>&1; check "unknown command is usage" 2 $?
"$tool" --help >/dev/null; check "--help" 0 $?
echo wrong-pin > "$dir/pin"
run keys >/dev/null 2>"$dir/err"; check "wrong PIN refused" 3 $?
has "wrong PIN says login" "HSM_ERR_LOGIN" "$dir/err"

[ $fails -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
