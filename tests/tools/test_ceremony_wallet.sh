#!/usr/bin/env bash
# The wallet-key ceremonies of tokenvault-ceremony as an officer runs them,
# against a fresh SoftHSM token: keys and CSRs made in the HSM (checked with
# the openssl tool), Apple's certificate for the right and the wrong key, trust
# anchors, hostile files, the listing.
#   test_ceremony_wallet.sh TOOL MODULE VECTORS_DIR
set -u
tool=$1
module=$2
vectors=$3
dir=$(mktemp -d /tmp/tv-ceremony-wallet-XXXXXX)
cd "$dir" # ceremonies leave their transcripts in the current directory
trap 'rm -rf "$dir"' EXIT
export SOFTHSM2_CONF=$dir/softhsm2.conf
mkdir "$dir/tokens"
echo "directories.tokendir = $dir/tokens" > "$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label wallet --so-pin so-pin-9 --pin user-pin-9 >/dev/null
(umask 077; echo user-pin-9 > "$dir/pin")
fails=0
check() { # check NAME EXPECTED_RC ACTUAL_RC
    if [ "$2" != "$3" ]; then echo "FAIL $1: exit $3, expected $2"; fails=$((fails + 1)); else echo "ok   $1"; fi
}
has() { # has NAME PATTERN FILE
    if grep -q -- "$2" "$3"; then echo "ok   $1"; else echo "FAIL $1: no '$2' in output"; cat "$3"; fails=$((fails + 1)); fi
}
hasnt() { # hasnt NAME PATTERN FILE
    if grep -q -- "$2" "$3"; then echo "FAIL $1: '$2' in output"; cat "$3"; fails=$((fails + 1)); else echo "ok   $1"; fi
}
same() { # same NAME A B
    if [ -n "$2" ] && [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: '$2' != '$3'"; fails=$((fails + 1)); fi
}
run() { "$tool" --module "$module" --token wallet --pin-file "$dir/pin" "$@"; }
# Apple's publicKeyHash of a PEM CSR or certificate: base64 SHA-256 of the SPKI DER.
spki_hash() { openssl "$1" -in "$2" -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64; }
mid=358DA5890B9555C0A9EFB84B5CD6FF04BFDCD5AABF5DC14B9872D8DF51EAF439

# A stand-in for Apple's WWDR CA, and the extension file of a Payment
# Processing certificate (merchant id as Apple encodes it: UTF8String of hex).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/ca.key" \
    -out "$dir/ca.pem" -subj "/CN=Test WWDR CA" -days 30 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyAgreement,keyEncipherment\n1.2.840.113635.100.6.32=ASN1:UTF8String:%s\n' \
    "$mid" > "$dir/apple.ext"
printf 'basicConstraints=critical,CA:FALSE\n' > "$dir/plain.ext"
issue() { # issue CSR EXTFILE OUT [der]
    openssl x509 -req -in "$1" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 30 \
        -extfile "$2" -out "$3" ${4:+-outform DER} 2>/dev/null
}

# ---- Apple Pay: key, CSR, certificate ------------------------------------------
run --label apple-m1 --out "$dir/m1.csr" --subject "merchant.com.example" applepay-key >"$dir/ak.out" 2>&1
check "applepay-key" 0 $?
has "apple key derives and signs" "^apple-m1 .*ec-derive-sign.*KCV [0-9A-F]\{6\}" "$dir/ak.out"
has "apple key sensitive and frozen" "storage:   token private sensitive .*!modifiable !copyable" "$dir/ak.out"
has "apple key usage" "usage:     !decrypt sign !unwrap derive" "$dir/ak.out"
openssl req -in "$dir/m1.csr" -noout -verify 2>&1 | grep -q "verify OK"
check "CSR signature (made in the HSM) verifies" 0 $?
openssl req -in "$dir/m1.csr" -noout -text | grep -q "Signature Algorithm: ecdsa-with-SHA256"
check "CSR is ecdsa-with-SHA256" 0 $?
openssl req -in "$dir/m1.csr" -noout -text | grep -q "NIST CURVE: P-256"
check "CSR key is P-256" 0 $?
openssl req -in "$dir/m1.csr" -noout -subject | grep -q "CN = merchant.com.example"
check "CSR subject from --subject" 0 $?
m1_hash=$(awk '/Apple publicKeyHash/ {print $4}' "$dir/ak.out")
same "CSR carries the HSM key (publicKeyHash)" "$m1_hash" "$(spki_hash req "$dir/m1.csr")"
[ "$(stat -c %a "$dir/m1.csr")" = 644 ]; check "CSR file is 0644 (public)" 0 $?

run --label apple-m1 --out "$dir/again.csr" applepay-key >/dev/null 2>"$dir/err"
check "existing label refused" 3 $?
has "existing label says why" "HSM_ERR_EXISTS" "$dir/err"
[ ! -e "$dir/again.csr" ]; check "no CSR left behind" 0 $?
touch "$dir/taken.csr"
run --label apple-m9 --out "$dir/taken.csr" applepay-key >/dev/null 2>"$dir/err"
check "existing --out file refused" 1 $?
has "existing file says why" "never overwrites" "$dir/err"
run --label apple-m9 applepay-key >/dev/null 2>&1; check "applepay-key without --out is usage" 2 $?
run --label 'bad label' --out "$dir/bad.csr" applepay-key >/dev/null 2>&1; check "bad label is usage" 2 $?
run --label apple-m8 --out "$dir/m8.csr" --subject "$(printf 'x\ty')" applepay-key >/dev/null 2>"$dir/err"
check "control character in --subject refused" 2 $?
[ ! -e "$dir/m8.csr" ]; check "no CSR for a refused subject" 0 $?

issue "$dir/m1.csr" "$dir/apple.ext" "$dir/m1.pem"
run --label apple-m1 --in "$dir/m1.pem" applepay-cert >"$dir/ac.out" 2>&1
check "applepay-cert" 0 $?
has "merchant id read from the certificate" "merchant id    $mid" "$dir/ac.out"
has "publicKeyHash printed" "Apple publicKeyHash (base64):  $m1_hash" "$dir/ac.out"
has "validity printed" "valid until" "$dir/ac.out"
run --label apple-m1 --in "$dir/m1.pem" applepay-cert >/dev/null 2>"$dir/err"
check "second certificate for a key refused" 3 $?

# The same ceremony with Apple's DER .cer, for a second key.
run --label apple-m2 --out "$dir/m2.csr" applepay-key >/dev/null 2>&1; check "applepay-key (second)" 0 $?
openssl req -in "$dir/m2.csr" -noout -subject | grep -q "CN = apple-m2"
check "CSR subject defaults to the label" 0 $?
issue "$dir/m2.csr" "$dir/apple.ext" "$dir/m2.cer" der
# Apple's real certificate is for another key: refused, nothing stored.
run --label apple-m2 --in "$vectors/gala-2023/certificate.pem" applepay-cert >/dev/null 2>"$dir/err"
check "certificate for another key refused" 1 $?
has "another key says so" "the certificate is for another key" "$dir/err"
# The certificate of apple-m1 is for another key too.
run --label apple-m2 --in "$dir/m1.pem" applepay-cert >/dev/null 2>"$dir/err"
check "apple-m1's certificate refused for apple-m2" 1 $?
# Hostile files.
head -c 200 "$dir/m1.pem" > "$dir/cut.pem"
run --label apple-m2 --in "$dir/cut.pem" applepay-cert >/dev/null 2>"$dir/err"
check "truncated PEM refused" 1 $?
has "truncated PEM says why" "not exactly one PEM CERTIFICATE" "$dir/err"
cat "$dir/m1.pem" "$dir/m1.pem" > "$dir/two.pem"
run --label apple-m2 --in "$dir/two.pem" applepay-cert >/dev/null 2>&1; check "two PEM blocks refused" 1 $?
sed 's/CERTIFICATE/PRIVATE KEY/' "$dir/m1.pem" > "$dir/kind.pem"
run --label apple-m2 --in "$dir/kind.pem" applepay-cert >/dev/null 2>&1; check "PEM of another kind refused" 1 $?
sed '2s/^..../!!!!/' "$dir/m1.pem" > "$dir/b64.pem"
run --label apple-m2 --in "$dir/b64.pem" applepay-cert >/dev/null 2>&1; check "PEM with bad base64 refused" 1 $?
head -c 300 /dev/urandom > "$dir/noise.cer"
run --label apple-m2 --in "$dir/noise.cer" applepay-cert >/dev/null 2>"$dir/err"
check "random bytes refused" 1 $?
has "random bytes say why" "not an X.509 certificate" "$dir/err"
issue "$dir/m2.csr" "$dir/plain.ext" "$dir/m2-plain.pem"
run --label apple-m2 --in "$dir/m2-plain.pem" applepay-cert >/dev/null 2>"$dir/err"
check "certificate without merchant id refused" 1 $?
has "no merchant id says why" "not an Apple Pay Payment Processing certificate" "$dir/err"
run --label apple-m2 --in "$dir/m2.cer" applepay-cert >"$dir/ac2.out" 2>&1
check "applepay-cert from DER after the refusals" 0 $?
run --label apple-none --in "$dir/m2.cer" applepay-cert >/dev/null 2>&1; check "unknown key" 4 $?
run --label apple-m2 applepay-cert >/dev/null 2>&1; check "applepay-cert without --in is usage" 2 $?

# ---- Google Pay --------------------------------------------------------------------
run --label gpay-1 googlepay-key >"$dir/gk.out" 2>&1
check "googlepay-key" 0 $?
has "google key derive only" "usage:     !decrypt !sign !unwrap derive" "$dir/gk.out"
gpub=$(grep -v "^transcript written\|^ceremony NOT recorded" "$dir/gk.out" | tail -1)
[ "$(printf '%s' "$gpub" | base64 -d | head -c1 | od -An -tx1 | tr -d ' ')" = 04 ] &&
    [ "$(printf '%s' "$gpub" | base64 -d | wc -c)" = 65 ]
check "Google public key is a base64 65-byte uncompressed point" 0 $?
# The point, put back into an SPKI, is the key whose SHA-256 the tool printed.
spki_prefix=$(echo 3059301306072a8648ce3d020106082a8648ce3d030107034200 | sed 's/../\\x&/g')
spki_sha=$( { printf "$spki_prefix"; printf '%s' "$gpub" | base64 -d; } |
            openssl dgst -sha256 -r | cut -d' ' -f1 | tr a-f A-F)
has "Google point is the HSM key" "public key SHA-256 (SPKI):     $spki_sha" "$dir/gk.out"
hasnt "no Apple hash for a Google key" "publicKeyHash" "$dir/gk.out"
# The Apple key (derive + sign) is stored exactly like the derive-only one.
same "Apple and Google keys stored alike" "$(grep -m1 'storage:' "$dir/ak.out")" "$(grep -m1 'storage:' "$dir/gk.out")"

# ---- Samsung Pay ---------------------------------------------------------------------
run --label spay-1 --out "$dir/s1.csr" samsungpay-key >"$dir/sk.out" 2>&1
check "samsungpay-key" 0 $?
has "samsung key unwraps and signs" "usage:     !decrypt sign unwrap !derive" "$dir/sk.out"
same "Samsung and Google keys stored alike" "$(grep -m1 'storage:' "$dir/sk.out")" "$(grep -m1 'storage:' "$dir/gk.out")"
openssl req -in "$dir/s1.csr" -noout -verify 2>&1 | grep -q "verify OK"
check "Samsung CSR verifies" 0 $?
openssl req -in "$dir/s1.csr" -noout -text | grep -q "Signature Algorithm: sha256WithRSAEncryption"
check "Samsung CSR is sha256WithRSAEncryption" 0 $?
openssl req -in "$dir/s1.csr" -noout -text | grep -q "Public-Key: (2048 bit)"
check "Samsung key is RSA-2048" 0 $?
run --label spay-1 --in "$dir/m1.pem" applepay-cert >/dev/null 2>"$dir/err"
check "Apple certificate for the Samsung key refused" 1 $?
has "wrong kind says why" "not an Apple Pay EC key" "$dir/err"

# ---- trust anchors -----------------------------------------------------------------
run --label apple-root-g3 --kind apple-root --in "$vectors/apple-root-ca/AppleRootCA-G3.pem" trust-anchor >"$dir/ta.out" 2>&1
check "trust-anchor apple-root" 0 $?
has "G3 recognised" "this is Apple Root CA - G3" "$dir/ta.out"
run --label apple-root-g3 --kind apple-root --in "$vectors/apple-root-ca/AppleRootCA-G3.pem" trust-anchor >/dev/null 2>&1
check "anchor label taken" 3 $?
run --label not-root --kind apple-root --in "$dir/m1.pem" trust-anchor >/dev/null 2>"$dir/err"
check "leaf certificate refused as a root" 1 $?
has "leaf says why" "not a self-signed certificate" "$dir/err"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/nca.key" \
    -out "$dir/nca.pem" -subj "/CN=Not a CA" -days 30 -addext basicConstraints=critical,CA:FALSE 2>/dev/null
run --label not-ca --kind apple-root --in "$dir/nca.pem" trust-anchor >/dev/null 2>"$dir/err"
check "self-signed non-CA refused" 1 $?
has "non-CA says why" "not a CA certificate" "$dir/err"
run --label test-root --kind apple-root --in "$dir/ca.pem" trust-anchor >"$dir/ta2.out" 2>&1
check "a test root is stored" 0 $?
has "a test root is flagged" "WARNING: this is NOT Apple Root CA - G3" "$dir/ta2.out"

keys=$vectors/google-test-root-keys/keys.json
run --label gtest --kind google-keys --in "$keys" trust-anchor >"$dir/gr.out" 2>&1
check "trust-anchor google-keys" 0 $?
has "ECv1 root stored" "^gtest-ECv1-1 .*anchor google-ECv1" "$dir/gr.out"
has "ECv2 root stored with its expiry" "2038-04-14T07:00:00.000Z (keyExpiration 2154841200000)" "$dir/gr.out"
has "ECv2SigningOnly root stored" "^gtest-ECv2SigningOnly-1 " "$dir/gr.out"
run --label gtest --kind google-keys --in "$keys" trust-anchor >/dev/null 2>&1
check "google labels taken" 3 $?
# Hostile keys.json files, each refused before anything is stored.
sed 's/"protocolVersion":"ECv1"/"protocolVersion":"ECv1","protocolVersion":"ECv2"/' "$keys" > "$dir/dup.json"
sed 's/MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEGnJ7/MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE!nJ7/' "$keys" > "$dir/b64.json"
sed 's/,"keyExpiration":"2154841200000"}]/}]/' "$keys" > "$dir/noexp.json"
sed 's/"keyExpiration":"2154841200000"/"keyExpiration":2154841200000/' "$keys" > "$dir/num.json"
printf '{"keys":[' > "$dir/cut.json"
for f in dup b64 noexp num cut; do
    run --label "bad-$f" --kind google-keys --in "$dir/$f.json" trust-anchor >/dev/null 2>"$dir/err"
    check "keys.json $f refused" 1 $?
    has "keys.json $f: nothing stored" "nothing stored" "$dir/err"
done
# One expired ECv2 key is skipped; a file of expired keys stores nothing.
printf '{"keys":[{"keyValue":"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEGnJ7Yo1sX9b4kr4Aa5uq58JRQfzD8bIJXw7WXaap/hVE+PnFxvjx4nVxt79SdRuUVeu++HZD0cGAv4IOznc96w==","protocolVersion":"ECv2","keyExpiration":"1000000000000"}]}' > "$dir/old.json"
run --label gold --kind google-keys --in "$dir/old.json" trust-anchor >/dev/null 2>"$dir/err"
check "only expired keys: refused" 1 $?
has "expired says why" "every key has expired" "$dir/err"
printf '{"keys":[{"keyValue":"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIsFro6K+IUxRr4yFTOTO+kFCCEvHo7B9IOMLxah6c977oFzX/beObH4a9OfosMHmft3JJZ6B3xpjIb8kduK4/A==","protocolVersion":"ECv1"},{"keyValue":"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEGnJ7Yo1sX9b4kr4Aa5uq58JRQfzD8bIJXw7WXaap/hVE+PnFxvjx4nVxt79SdRuUVeu++HZD0cGAv4IOznc96w==","protocolVersion":"ECv2","keyExpiration":"1000000000000"}]}' > "$dir/mixed.json"
run --label gmix --kind google-keys --in "$dir/mixed.json" trust-anchor >"$dir/mix.out" 2>&1
check "expired key among live ones: stored" 0 $?
has "the expired key is named as skipped" "skipped keys\[1\] (ECv2): expired at 2001-09-09T01:46:40.000Z" "$dir/mix.out"
run --label gtest --kind google-roots --in "$keys" trust-anchor >/dev/null 2>&1; check "unknown --kind is usage" 2 $?

# ---- the listing ------------------------------------------------------------------------
run wallet-keys >"$dir/wk.out" 2>&1
check "wallet-keys" 0 $?
m1_kcv=$(awk '/^apple-m1 / {print $5; exit}' "$dir/ak.out")
has "lists the Apple key" "^apple-m1 .*ec-derive-sign .*KCV $m1_kcv" "$dir/wk.out"
has "lists its certificate, same KCV" "^apple-m1 .*certificate .*KCV $m1_kcv" "$dir/wk.out"
has "lists the merchant id" "merchant id    $mid" "$dir/wk.out"
has "lists the Google key" "^gpay-1 .*ec-derive " "$dir/wk.out"
has "lists the Samsung key" "^spay-1 .*rsa-unwrap-sign " "$dir/wk.out"
has "lists the Apple root" "^apple-root-g3 .*anchor apple-root" "$dir/wk.out"
has "lists the Apple root's expiry" "expires        2039-04-30T18:19:06Z" "$dir/wk.out"
has "lists Google roots" "^gtest-ECv2-1 .*anchor google-ECv2 " "$dir/wk.out"
hasnt "no half-stored keys.json" "^bad-" "$dir/wk.out"
hasnt "no expired Google key" "^gmix-ECv2" "$dir/wk.out"
hasnt "no refused certificate" "^apple-m9" "$dir/wk.out"
run keys >/dev/null 2>&1; check "keys still lists everything" 0 $?

# ---- importing an existing key (a merchant moving from another processor) ----------------
# After the listing above: an imported key is never "always sensitive", which `keys` reports.
ossl_quiet() { "$@" 2>/dev/null; }
# The officer's copy of a key file is 0600 (the vectors are 0644).
(umask 077
 cp "$vectors/gala-2023/private_key.pem" "$dir/gala.pem"
 cp "$vectors/gala-2023/private_key.pem" "$dir/gala-644.pem"
 ossl_quiet openssl genrsa -traditional -out "$dir/spay.pem" 2048
 ossl_quiet openssl genrsa -out "$dir/arsa.pem" 2048
 ossl_quiet openssl pkcs8 -topk8 -nocrypt -in "$dir/arsa.pem" -outform DER -out "$dir/arsa.der"
 ossl_quiet openssl ecparam -name prime256v1 -genkey -out "$dir/gp.pem"
 ossl_quiet openssl genrsa -out "$dir/rsa1024.pem" 1024
 ossl_quiet openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -pkeyopt rsa_keygen_pubexp:3 \
     -out "$dir/rsa-e3.pem"
 ossl_quiet openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$dir/p384.pem"
 ossl_quiet openssl pkey -in "$dir/gala.pem" -aes256 -passout pass:secret-9 -out "$dir/enc8.pem"
 ossl_quiet openssl pkey -in "$dir/spay.pem" -traditional -aes256 -passout pass:secret-9 -out "$dir/encold.pem"
 ossl_quiet openssl pkcs8 -topk8 -in "$dir/gala.pem" -v2 aes256 -passout pass:secret-9 -outform DER \
     -out "$dir/enc8.der"
 head -c 300 /dev/urandom > "$dir/noise.key"
 { cat "$dir/gala.pem"; echo "trailing text"; } > "$dir/trail.pem"
 { cat "$dir/arsa.der"; printf '\0'; } > "$dir/trail.der"
 head -c 9000 /dev/zero > "$dir/big.key"
 ln -s "$dir/gala.pem" "$dir/link.pem")
chmod 644 "$dir/gala-644.pem"
# A certificate for the Apple RSA_v1 key (with a merchant id) and one for no key of ours.
openssl req -new -key "$dir/arsa.pem" -subj "/CN=Apple RSA test" -out "$dir/arsa.csr" 2>/dev/null
issue "$dir/arsa.csr" "$dir/apple.ext" "$dir/arsa-cert.pem"
other_cert=$vectors/gala-2015/certificate.pem
[ -f "$other_cert" ] || { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/other.key" -out "$dir/other.pem" -subj "/CN=other" -days 30 2>/dev/null; other_cert=$dir/other.pem; }

# refused NAME RC PATTERN ARGS...: wallet-import exits RC saying PATTERN, and the token's
# wallet listing is the same before and after.
refused() {
    local name=$1 want=$2 pat=$3 before
    shift 3
    before=$(run wallet-keys 2>&1)
    run "$@" wallet-import >"$dir/imp.out" 2>"$dir/err"
    check "import: $name refused" "$want" $?
    has "import: $name says why" "$pat" "$dir/err"
    same "import: $name leaves the token unchanged" "$before" "$(run wallet-keys 2>&1)"
}
gcert=$vectors/gala-2023/certificate.pem
refused "key file of mode 0644" 1 "mode 0644 lets others read or change it" \
    --label imp-gala --kind ec --in "$dir/gala-644.pem" --cert "$gcert"
refused "key file behind a symlink" 1 "link.pem: " --label imp-gala --kind ec --in "$dir/link.pem"
refused "a taken key label" 3 "HSM_ERR_EXISTS" --label apple-m1 --kind ec --in "$dir/gala.pem"
refused "a label taken by a trust anchor" 3 "HSM_ERR_EXISTS" --label apple-root-g3 --kind ec --in "$dir/gala.pem"
refused "certificate of another key" 1 "the certificate is for another key" \
    --label imp-gala --kind ec --in "$dir/gala.pem" --cert "$other_cert"
refused "certificate of an RSA key for an EC key" 1 "the certificate is for another key" \
    --label imp-gala --kind ec --in "$dir/gala.pem" --cert "$dir/arsa-cert.pem"
refused "RSA-1024" 1 "an RSA key of 1024 bits; only RSA-2048" --label imp-rsa --kind rsa --in "$dir/rsa1024.pem"
refused "RSA exponent 3" 1 "public exponent is not 65537" --label imp-rsa --kind rsa-decrypt --in "$dir/rsa-e3.pem"
refused "EC P-384" 1 "on curve secp384r1; only P-256" --label imp-gala --kind ec --in "$dir/p384.pem"
refused "an EC key as --kind rsa" 1 "an EC key; --kind rsa takes an RSA-2048 key" \
    --label imp-rsa --kind rsa --in "$dir/gala.pem"
refused "an RSA key as --kind ec" 1 "an RSA key; --kind ec takes an EC P-256 key" \
    --label imp-gala --kind ec --in "$dir/spay.pem"
refused "encrypted PKCS#8 PEM" 1 "an encrypted key" --label imp-gala --kind ec --in "$dir/enc8.pem"
refused "encrypted traditional PEM" 1 "an encrypted key" --label imp-rsa --kind rsa --in "$dir/encold.pem"
refused "encrypted PKCS#8 DER" 1 "an encrypted key" --label imp-gala --kind ec --in "$dir/enc8.der"
refused "garbage file" 1 "not an EC private key" --label imp-gala --kind ec --in "$dir/noise.key"
refused "PEM with trailing text" 1 "not exactly one PEM private key" --label imp-gala --kind ec --in "$dir/trail.pem"
refused "DER with a trailing byte" 1 "or bytes after it" --label imp-rsa --kind rsa --in "$dir/trail.der"
refused "file over the limit" 1 "larger than 8192 bytes" --label imp-gala --kind ec --in "$dir/big.key"
refused "unknown --kind" 2 "--kind is ec, rsa or rsa-decrypt" --label imp-gala --kind dsa --in "$dir/gala.pem"
refused "no --in" 2 "needs --label L" --label imp-gala --kind ec
# All or nothing: this certificate certifies the key, but storing it fails after the key is made
# (a certificate with CKA_ID "anchor:apple-root" exists: the Apple root's), so the key goes again.
refused "a certificate that cannot be stored" 3 "removed from the HSM again: nothing stored" \
    --label anchor:apple-root --kind ec --in "$dir/gala.pem" --cert "$gcert"

# Apple Pay EC_v1: gala-2023's merchant key with Apple's certificate (same label as the refusals:
# none of them left an object behind).
run --label imp-gala --kind ec --in "$dir/gala.pem" --cert "$gcert" wallet-import >"$dir/imp-ec.out" 2>&1
check "import: gala-2023 key with its certificate" 0 $?
has "import: EC key is ec-derive" "^imp-gala .*ec-derive .*EC-P256 .*KCV [0-9A-F]\{6\}" "$dir/imp-ec.out"
has "import: EC key sensitive, extractable only under a trusted key" \
    "storage:   token private sensitive extractable !always-sensitive !never-extractable wrap-with-trusted !modifiable !copyable" "$dir/imp-ec.out"
has "import: EC key derives only" "usage:     !decrypt !sign !unwrap derive" "$dir/imp-ec.out"
has "import: merchant id printed" "merchant id    $mid" "$dir/imp-ec.out"
has "import: Apple publicKeyHash is the certificate's" \
    "Apple publicKeyHash (base64):  $(spki_hash x509 "$gcert")" "$dir/imp-ec.out"
has "import: reminds to destroy the key file" "still holds this private key in clear" "$dir/imp-ec.out"
cmp -s "$dir/gala.pem" "$vectors/gala-2023/private_key.pem"; check "import: the key file is left as it was" 0 $?
tr=$(ls "$dir"/ceremony-wallet-import-*.txt | tail -1)
has "import: transcript written" "^ceremony: wallet-import" "$tr"
# The private scalar, in hex or base64, and the PEM line holding it appear nowhere.
priv_hex=$(openssl ec -in "$dir/gala.pem" -text -noout 2>/dev/null |
           awk '/^priv:/ {f = 1; next} /^pub:/ {f = 0} f' | tr -d ' :\n' | tr a-f A-F)
priv_b64=$(printf "$(printf '%s' "$priv_hex" | sed 's/^00//; s/../\\x&/g')" | base64)
[ ${#priv_hex} -ge 64 ]; check "import: test reads the private scalar" 0 $?
if grep -q -i -F -e "$priv_hex" -e "$priv_b64" -e "$(sed -n 2p "$dir/gala.pem")" \
        "$dir"/ceremony-wallet-import-*.txt "$dir/imp-ec.out"; then
    echo "FAIL import: private key material in a transcript"; fails=$((fails + 1))
else echo "ok   import: no private key material in the transcripts"; fi

# Google Pay: a fresh P-256 key as openssl ecparam writes it (EC PARAMETERS, then SEC1).
run --label imp-gpay --kind ec --in "$dir/gp.pem" wallet-import >"$dir/imp-gp.out" 2>&1
check "import: ecparam -genkey file" 0 $?
has "import: same public key" "public key SHA-256 (SPKI):     $(openssl pkey -in "$dir/gp.pem" -pubout -outform DER |
    openssl dgst -sha256 -r | cut -d' ' -f1 | tr a-f A-F)" "$dir/imp-gp.out"
hasnt "import: no Apple hash without an Apple certificate" "publicKeyHash" "$dir/imp-gp.out"

# Samsung Pay: RSA-2048, PKCS#1 PEM, as an unwrap key.
run --label imp-spay --kind rsa --in "$dir/spay.pem" wallet-import >"$dir/imp-rsa.out" 2>&1
check "import: RSA key as rsa" 0 $?
has "import: rsa is rsa-unwrap" "^imp-spay .*rsa-unwrap .*RSA-2048" "$dir/imp-rsa.out"
has "import: rsa unwraps only" "usage:     !decrypt !sign unwrap !derive" "$dir/imp-rsa.out"
has "import: rsa is the file's key" "public key SHA-256 (SPKI):     $(openssl pkey -in "$dir/spay.pem" -pubout -outform DER |
    openssl dgst -sha256 -r | cut -d' ' -f1 | tr a-f A-F)" "$dir/imp-rsa.out"
same "import: stored like a generated Samsung key" "$(grep -m1 'storage:' "$dir/imp-rsa.out")" \
    "$(grep -m1 'storage:' "$dir/imp-ec.out")"

# Apple Pay RSA_v1: RSA-2048, PKCS#8 DER, as a decrypt key, with an Apple-style certificate.
run --label imp-arsa --kind rsa-decrypt --in "$dir/arsa.der" --cert "$dir/arsa-cert.pem" wallet-import >"$dir/imp-rd.out" 2>&1
check "import: RSA key as rsa-decrypt with its certificate" 0 $?
has "import: rsa-decrypt kind" "^imp-arsa .*rsa-decrypt .*RSA-2048" "$dir/imp-rd.out"
has "import: rsa-decrypt usage" "usage:     decrypt !sign unwrap !derive" "$dir/imp-rd.out"
has "import: its merchant id" "merchant id    $mid" "$dir/imp-rd.out"
has "import: its publicKeyHash" "Apple publicKeyHash (base64):  $(spki_hash x509 "$dir/arsa-cert.pem")" "$dir/imp-rd.out"

# The listing: keys with their certificates, the same KCV, the merchant id.
run wallet-keys >"$dir/wk2.out" 2>&1
check "wallet-keys after the imports" 0 $?
g_kcv=$(awk '/^imp-gala / {print $5; exit}' "$dir/imp-ec.out")
has "lists the imported Apple EC key" "^imp-gala .*ec-derive .*KCV $g_kcv" "$dir/wk2.out"
has "lists its certificate, same KCV" "^imp-gala .*certificate .*KCV $g_kcv" "$dir/wk2.out"
grep -A1 "^imp-gala .*certificate" "$dir/wk2.out" | grep -q "merchant id    $mid"
check "lists the imported key's merchant id" 0 $?
has "lists the Google key" "^imp-gpay .*ec-derive " "$dir/wk2.out"
has "lists the Samsung key" "^imp-spay .*rsa-unwrap " "$dir/wk2.out"
has "lists the Apple RSA key" "^imp-arsa .*rsa-decrypt " "$dir/wk2.out"
has "lists the Apple RSA certificate" "^imp-arsa .*certificate " "$dir/wk2.out"
hasnt "no key from a refused import" "^imp-rsa \|^anchor:apple-root " "$dir/wk2.out"

# `keys`: each imported key is sensitive, extractable only under a trusted key, frozen, with the
# usages of its kind; it is never "always sensitive" (PKCS#11 CKA_ALWAYS_SENSITIVE), which
# `keys` names as its origin (CKA_LOCAL false, a wallet kind), not as unsafe: the token with
# imported wallet keys passes the review.
run keys >"$dir/keys2.out" 2>&1
check "keys passes with imported wallet keys" 0 $?
for l in imp-gala imp-gpay imp-spay imp-arsa; do
    awk -v l="$l" '$1 == l {p = 1; print; next} /^[^ ]/ {p = 0} p' "$dir/keys2.out" > "$dir/block"
    has "keys: $l listed" "^$l " "$dir/block"
    has "keys: $l sensitive, not extractable but under a trusted key" \
        "sensitive extractable !always-sensitive !never-extractable wrap-with-trusted !modifiable !copyable" "$dir/block"
    [ "$(grep -c 'UNSAFE' "$dir/block")" = 0 ] && grep -q "imported:  made outside the HSM" "$dir/block"
    check "keys: $l has no warning, and its origin is named" 0 $?
done
for l in apple-m1 gpay-1 spay-1; do
    awk -v l="$l" '$1 == l {p = 1; print; next} /^[^ ]/ {p = 0} p' "$dir/keys2.out" > "$dir/block"
    hasnt "keys: generated $l still has no warning" "UNSAFE" "$dir/block"
done

# The backup ceremony takes imported keys like generated ones (extractable only under the
# SO-made trusted transport key).
(umask 077; echo so-pin-9 > "$dir/so-pin"; mkdir "$dir/shares")
run --so-pin-file "$dir/so-pin" --threshold 2 --shares 2 --share-dir "$dir/shares" \
    --set-file "$dir/t.set" --out "$dir/keys.tvkb" backup >"$dir/bk.out" 2>&1
check "backup with imported keys" 0 $?
has "backup wraps the imported EC key" "^  imp-gala .*ec-derive .*KCV $g_kcv" "$dir/bk.out"
has "backup wraps the imported RSA key" "^  imp-spay .*rsa-unwrap" "$dir/bk.out"

[ $fails -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
