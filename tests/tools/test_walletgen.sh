#!/usr/bin/env bash
# tokenvault-walletgen, which plays Apple, Google and Samsung for the tests
# and the demo: every subcommand, its output checked with the openssl tool
# (certificates, the extension, CMS signatures, JWE headers) and grep, the
# officer's ceremonies taking what it makes (applepay-cert, both trust
# anchors), the service's wallet engine opening its packets (wallet-check on
# a SoftHSM token), and every refusal: an existing output file, a card number
# not on the test list, a bad merchant id, keys and options that do not fit.
#   test_walletgen.sh WALLETGEN CEREMONY MODULE VECTORS_DIR
set -u
wg=$1
ceremony=$2
module=$3
vectors=$4
tink=$vectors/tink-paymentmethodtoken
dir=$(mktemp -d /tmp/tv-walletgen-XXXXXX)
cd "$dir" # ceremonies leave their transcripts in the current directory
trap 'rm -rf "$dir"' EXIT
export SOFTHSM2_CONF=$dir/softhsm2.conf
mkdir "$dir/tokens"
echo "directories.tokendir = $dir/tokens" > "$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label walletgen --so-pin so-pin-9 --pin user-pin-9 >/dev/null
(umask 077; echo user-pin-9 > "$dir/pin")
fails=0
check() { # check NAME EXPECTED_RC ACTUAL_RC
    if [ "$2" != "$3" ]; then echo "FAIL $1: exit $3, expected $2"; fails=$((fails + 1)); else echo "ok   $1"; fi
}
has() { # has NAME PATTERN FILE
    if grep -q -E -- "$2" "$3"; then echo "ok   $1"; else echo "FAIL $1: no '$2' in"; cat "$3"; fails=$((fails + 1)); fi
}
hasnt() { # hasnt NAME PATTERN FILE
    if grep -q -E -- "$2" "$3"; then echo "FAIL $1: '$2' in $3"; fails=$((fails + 1)); else echo "ok   $1"; fi
}
same() { # same NAME A B
    if [ -n "$2" ] && [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: '$2' != '$3'"; fails=$((fails + 1)); fi
}
absent() { # absent NAME FILE: a refused command left no file behind
    if [ -e "$2" ]; then echo "FAIL $1: $2 exists"; fails=$((fails + 1)); else echo "ok   $1"; fi
}
mode600() { same "$1 is mode 0600" "$(stat -c %a "$2" 2>/dev/null)" 600; }
run() { "$ceremony" --module "$module" --token walletgen --pin-file "$dir/pin" "$@"; }
# A JSON string member, and base64/base64url/hex decoding, with the shell only.
member() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" "$2"; }
unb64url() { local s; s=$(printf %s "$1" | tr '_-' '/+'); while [ $((${#s} % 4)) -ne 0 ]; do s="$s="; done; printf %s "$s" | base64 -d; }
unhex() { printf '%b' "$(printf %s "$1" | sed 's/../\\x&/g')"; }
spki_hash() { openssl "$1" -in "$2" -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64; }
upper_sha256() { printf %s "$1" | openssl dgst -sha256 -r | cut -d' ' -f1 | tr a-f A-F; }
# The signed bytes of an Apple packet (WALLETS.md 1.2 step 4) and its CMS.
apple_cms() { # apple_cms PACKET KEYMEMBER
    { member "$2" "$1" | base64 -d; member data "$1" | base64 -d; unhex "$(member transactionId "$1")"; } > "$1.signed"
    member signature "$1" | base64 -d > "$1.p7s"
}

# ---- usage ---------------------------------------------------------------------
"$wg" --help > help.out; check "--help" 0 $?
has "--help says it plays the wallets, for tests and the demo only" "PLAYS" help.out
has "--help: for the tests and the demo only" "the tests and the demo only" help.out
has "--help lists the test card numbers" "4111111111111111" help.out
"$wg" apple-ca > /dev/null 2>&1; check "apple-ca without --dir: usage" 2 $?
"$wg" nonsense --dir x > /dev/null 2>&1; check "unknown command: usage" 2 $?
"$wg" apple-ca --dir ca --out x > /dev/null 2>&1; check "an option the command does not take: usage" 2 $?
absent "nothing made on a usage error" ca
"$wg" apple-ca --dir ca --dir ca2 > /dev/null 2>&1; check "an option twice: usage" 2 $?

# ---- apple-ca ------------------------------------------------------------------
"$wg" apple-ca --dir ca > ca.out; check "apple-ca" 0 $?
for f in root.pem intermediate.pem leaf.pem root-key.pem intermediate-key.pem leaf-key.pem; do
    mode600 "ca/$f" "ca/$f"
done
openssl verify -CAfile ca/root.pem ca/intermediate.pem > /dev/null; check "intermediate chains to root.pem" 0 $?
openssl verify -CAfile ca/root.pem -untrusted ca/intermediate.pem -purpose any ca/leaf.pem > /dev/null
check "leaf chains through the intermediate" 0 $?
openssl x509 -in ca/intermediate.pem -noout -text > inter.txt
has "intermediate carries Apple's marker" "1\.2\.840\.113635\.100\.6\.2\.14" inter.txt
openssl x509 -in ca/leaf.pem -noout -text > leaf.txt
has "leaf carries Apple's marker" "1\.2\.840\.113635\.100\.6\.29" leaf.txt
has "EC leaf by default" "id-ecPublicKey" leaf.txt
cp ca/root.pem root.before
"$wg" apple-ca --dir ca > again.out 2>&1; check "apple-ca into an existing CA: refused" 1 $?
has "says why" "File exists" again.out
cmp -s root.before ca/root.pem; check "the existing CA is untouched" 0 $?
"$wg" apple-ca --dir rsa-ca --leaf rsa > /dev/null; check "apple-ca --leaf rsa" 0 $?
openssl x509 -in rsa-ca/leaf.pem -noout -text | grep -q rsaEncryption; check "RSA leaf" 0 $?
"$wg" apple-ca --dir x-ca --leaf dsa > /dev/null 2>&1; check "--leaf dsa: usage" 2 $?

# ---- apple-cert ----------------------------------------------------------------
mid_text=merchant.com.example.m1001
mid=$(upper_sha256 "$mid_text")
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.key 2>/dev/null
openssl pkey -in ec.key -pubout -out ec.pub
openssl pkey -in ec.key -pubout -outform DER -out ec.der
chmod 644 ca/leaf-key.pem
"$wg" apple-cert --dir ca --pubkey ec.pub --merchant-id merchant.a --out nope.pem > loose.out 2>&1
check "a CA key readable by others: refused" 1 $?
has "says why" "keys mode 0600" loose.out
absent "no certificate" nope.pem
chmod 600 ca/leaf-key.pem
"$wg" apple-cert --dir ca --pubkey ec.pub --merchant-id "$mid_text" --out m.pem > cert.out
check "apple-cert (PEM SubjectPublicKeyInfo)" 0 $?
mode600 "the certificate" m.pem
has "prints the merchant id" "$mid" cert.out
openssl x509 -in m.pem -noout -text > m.txt; check "the certificate parses" 0 $?
has "extension 1.2.840.113635.100.6.32 present" "1\.2\.840\.113635\.100\.6\.32" m.txt
has "its value: SHA-256 of the merchant id, upper-case hex" "$mid" m.txt
has "Payment Processing subject" "Apple Pay Payment Processing" m.txt
has "issued by the intermediate" "Issuer: CN *= *Test Application Integration CA - G3" m.txt
has "key agreement (EC_v1)" "Key Agreement" m.txt
openssl verify -CAfile ca/root.pem -untrusted ca/intermediate.pem -purpose any m.pem > /dev/null
check "chains to root.pem" 0 $?
# The extension's value as Apple encodes it: UTF8String (0C), length 64 (40).
openssl x509 -in m.pem -outform DER | od -An -tx1 | tr -d ' \n' | grep -q "0c40$(printf %s "$mid" | od -An -tx1 | tr -d ' \n')"
check "value is a DER UTF8String of 64 hex digits" 0 $?
same "key of the certificate is the key given" "$(spki_hash x509 m.pem)" \
    "$(openssl pkey -pubin -in ec.pub -outform DER | openssl dgst -sha256 -binary | base64)"
"$wg" apple-cert --dir ca --pubkey ec.der --merchant-id "$mid_text" --out m-der.pem > /dev/null
check "apple-cert (DER SubjectPublicKeyInfo)" 0 $?
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
openssl req -new -key rsa.key -subj /CN=rsa-merchant -out rsa.csr
"$wg" apple-cert --dir rsa-ca --pubkey rsa.csr --merchant-id "$mid_text" --out m-rsa.pem > /dev/null
check "apple-cert (RSA-2048, from a CSR)" 0 $?
openssl x509 -in m-rsa.pem -noout -text | grep -q "Key Encipherment"; check "key encipherment (RSA_v1)" 0 $?
cp m.pem m.before
"$wg" apple-cert --dir ca --pubkey ec.pub --merchant-id "$mid_text" --out m.pem > exists.out 2>&1
check "existing output file: refused" 1 $?
has "says why" "File exists" exists.out
cmp -s m.before m.pem; check "the existing file is untouched" 0 $?
for bad in "com.example" "merchant." "merchant.a b" "merchant.a\"b" "merchant.$(printf 'x%.0s' $(seq 1 130))"; do
    "$wg" apple-cert --dir ca --pubkey ec.pub --merchant-id "$bad" --out bad-mid.pem > /dev/null 2>&1
    check "bad merchant id '${bad:0:24}': usage" 2 $?
done
absent "no certificate for a bad merchant id" bad-mid.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.key 2>/dev/null
openssl pkey -in p384.key -pubout -out p384.pub
"$wg" apple-cert --dir ca --pubkey p384.pub --merchant-id "$mid_text" --out p384.pem > /dev/null 2>&1
check "P-384 key: refused" 1 $?
absent "no certificate for P-384" p384.pem
"$wg" apple-cert --dir ca --pubkey ca/root.pem --merchant-id "$mid_text" --out junk.pem > /dev/null 2>&1
check "a certificate is no public key: refused" 1 $?
# One bit of the CSR's signature (its last byte) flipped.
openssl req -in rsa.csr -outform DER -out csr.der
last=$(tail -c 1 csr.der | od -An -tu1 | tr -d ' ')
{ head -c -1 csr.der; printf "\\x$(printf %02x $((last ^ 1)))"; } > forged.der
openssl req -inform DER -in forged.der -out forged.csr
"$wg" apple-cert --dir rsa-ca --pubkey forged.csr --merchant-id "$mid_text" --out forged.pem > /dev/null 2>&1
check "a CSR its key did not sign: refused" 1 $?
openssl req -in forged.csr -noout -verify 2>&1 | grep -q "verify OK"; check "(openssl agrees the CSR is forged)" 1 $?
"$wg" apple-cert --dir nowhere --pubkey ec.pub --merchant-id "$mid_text" --out nowhere.pem > /dev/null 2>&1
check "no CA in --dir: refused" 1 $?

# The officer's ceremonies take it: the key made in the HSM, its CSR, the
# certificate for it, the test root as the apple-root anchor.
run --label apple-m1 --out apple.csr applepay-key > ak.out 2>&1; check "applepay-key" 0 $?
"$wg" apple-cert --dir ca --pubkey apple.csr --merchant-id "$mid_text" --out apple.pem > /dev/null
check "apple-cert for the HSM key's CSR" 0 $?
run --label apple-m1 --in apple.pem applepay-cert > ac.out 2>&1; check "applepay-cert stores it" 0 $?
has "the ceremony reads the same merchant id" "merchant id +$mid" ac.out
run --label apple-test-root --kind apple-root --in ca/root.pem trust-anchor > ar.out 2>&1
check "trust-anchor --kind apple-root takes root.pem" 0 $?
has "with the test-appliance warning" "NOT Apple Root CA - G3" ar.out

# ---- apple-packet --------------------------------------------------------------
t=$(( $(date +%s) - 30 ))
"$wg" apple-packet --dir ca --version EC_v1 --cert apple.pem --pan 4761120010000492 --expiry 301231 \
    --amount 4250 --currency 840 --eci 05 --signing-time "$t" --out apple.json > ap.out
check "apple-packet EC_v1" 0 $?
mode600 "the packet" apple.json
has "version EC_v1" '"version":"EC_v1"' apple.json
has "header with ephemeralPublicKey and transactionId" '"header":\{"ephemeralPublicKey":"[^"]+","publicKeyHash":"[^"]+","transactionId":"[0-9a-f]{64}"' apple.json
same "publicKeyHash is SHA-256 of the certificate's key" "$(member publicKeyHash apple.json)" "$(spki_hash x509 apple.pem)"
hasnt "no card number in clear" "4761120010000492" apple.json
hasnt "no card number on stdout" "4761120010000492" ap.out
apple_cms apple.json ephemeralPublicKey
openssl cms -verify -binary -inform DER -in apple.json.p7s -content apple.json.signed -CAfile ca/root.pem \
    -purpose any -out /dev/null 2>/dev/null
check "CMS signature over the signed fields verifies to root.pem" 0 $?
openssl cms -cmsout -print -inform DER -in apple.json.p7s > cms.txt
has "signingTime is --signing-time" "UTCTIME:$(date -u -d "@$t" '+%b %e %H:%M:%S %Y') GMT" cms.txt
printf 'pan=4000056655665556\n' | "$wg" apple-packet --dir ca --version EC_v1 --cert apple.pem --pan-stdin \
    --expiry 301231 --amount 1 --currency 978 --out apple-stdin.json > /dev/null
check "apple-packet --pan-stdin (any Luhn-valid number)" 0 $?
"$wg" apple-packet --dir rsa-ca --version RSA_v1 --cert m-rsa.pem --pan 4111111111111111 --expiry 301231 \
    --amount 100 --currency 826 --out apple-rsa.json > /dev/null
check "apple-packet RSA_v1" 0 $?
has "RSA_v1 carries a wrappedKey" '"version":"RSA_v1".*"wrappedKey":"' apple-rsa.json
apple_cms apple-rsa.json wrappedKey
openssl cms -verify -binary -inform DER -in apple-rsa.json.p7s -content apple-rsa.json.signed -CAfile rsa-ca/root.pem \
    -purpose any -out /dev/null 2>/dev/null
check "RSA_v1 CMS verifies" 0 $?
A=(--dir ca --version EC_v1 --cert apple.pem --expiry 301231 --amount 1 --currency 840)
"$wg" apple-packet "${A[@]}" --pan 4000056655665556 --out refused.json > unknown.out 2>&1
check "a card number not on the test list: usage" 2 $?
has "says to use stdin" "pan-stdin" unknown.out
printf 'pan=4000056655665557\n' | "$wg" apple-packet "${A[@]}" --pan-stdin --out refused.json > /dev/null 2>&1
check "--pan-stdin failing the Luhn check: usage" 2 $?
printf 'card=4111111111111111\n' | "$wg" apple-packet "${A[@]}" --pan-stdin --out refused.json > /dev/null 2>&1
check "--pan-stdin without pan=: usage" 2 $?
"$wg" apple-packet "${A[@]}" --out refused.json > /dev/null 2>&1; check "no card number: usage" 2 $?
"$wg" apple-packet "${A[@]}" --pan 4111111111111111 --pan-only --out refused.json > /dev/null 2>&1
check "--pan-only (Apple packets carry a cryptogram): usage" 2 $?
"$wg" apple-packet --dir ca --version EC_v1 --cert apple.pem --expiry 301331 --amount 1 --currency 840 \
    --pan 4111111111111111 --out refused.json > /dev/null 2>&1; check "expiry month 13: usage" 2 $?
"$wg" apple-packet --dir ca --version EC_v1 --cert apple.pem --expiry 301231 --amount 1 --currency 999 \
    --pan 4111111111111111 --out refused.json > /dev/null 2>&1; check "currency 999: usage" 2 $?
"$wg" apple-packet "${A[@]}" --pan 4111111111111111 --cryptogram 'not base64!' --out refused.json > /dev/null 2>&1
check "cryptogram not base64: usage" 2 $?
"$wg" apple-packet --dir ca --version EC_v2 --cert apple.pem --expiry 301231 --amount 1 --currency 840 \
    --pan 4111111111111111 --out refused.json > /dev/null 2>&1; check "version EC_v2: usage" 2 $?
"$wg" apple-packet --dir ca --version EC_v1 --cert ca/root.pem --expiry 301231 --amount 1 --currency 840 \
    --pan 4111111111111111 --out refused.json > /dev/null 2>&1
check "a certificate without the merchant id: refused" 1 $?
"$wg" apple-packet --dir ca --version RSA_v1 --cert m-rsa.pem --expiry 301231 --amount 1 --currency 840 \
    --pan 4111111111111111 --out refused.json > /dev/null 2>&1
check "RSA_v1 signed by an EC leaf: refused" 1 $?
absent "no packet after any refusal" refused.json
cp apple.json apple.before
"$wg" apple-packet "${A[@]}" --pan 4111111111111111 --out apple.json > /dev/null 2>&1
check "existing packet file: refused" 1 $?
cmp -s apple.before apple.json; check "the existing packet is untouched" 0 $?

# ---- google-keys ---------------------------------------------------------------
"$wg" google-keys --signing-key "$tink/GOOGLE_SIGNING_EC_V2_PRIVATE_KEY_PKCS8_BASE64.txt" --protocol ECv2 \
    --expires-in 86400 --out keys.json > gk.out
check "google-keys (Tink's base64 PKCS#8)" 0 $?
mode600 "keys.json" keys.json
same "keyValue is the key's public half" "$(member keyValue keys.json)" \
    "$(base64 -d "$tink/GOOGLE_SIGNING_EC_V2_PRIVATE_KEY_PKCS8_BASE64.txt" | openssl pkey -inform DER -pubout -outform DER | base64 -w0)"
has "protocolVersion ECv2" '"protocolVersion":"ECv2"' keys.json
exp=$(member keyExpiration keys.json); now_ms=$(( $(date +%s) * 1000 ))
if [ "$exp" -gt $((now_ms + 86000000)) ] && [ "$exp" -le $((now_ms + 86400000)) ]; then
    echo "ok   keyExpiration is now + --expires-in"; else echo "FAIL keyExpiration $exp"; fails=$((fails + 1)); fi
base64 -d "$tink/GOOGLE_SIGNING_EC_V1_PRIVATE_KEY_PKCS8_BASE64.txt" > v1.der
openssl pkey -inform DER -in v1.der -out v1.pem
"$wg" google-keys --signing-key v1.pem --protocol ECv1 --out keys-v1.json > /dev/null
check "google-keys ECv1 (PEM key)" 0 $?
hasnt "an ECv1 key has no keyExpiration" keyExpiration keys-v1.json
"$wg" google-keys --signing-key v1.der --out keys-der.json > /dev/null; check "google-keys (DER key)" 0 $?
run --label google-test --kind google-keys --in keys.json trust-anchor > gt.out 2>&1
check "trust-anchor --kind google-keys takes it" 0 $?
"$wg" google-keys --signing-key v1.pem --protocol ECv3 --out nope.json > /dev/null 2>&1
check "protocol ECv3: usage" 2 $?
"$wg" google-keys --signing-key rsa.key --out nope.json > /dev/null 2>&1; check "an RSA key: refused" 1 $?
"$wg" google-keys --signing-key ec.pub --out nope.json > /dev/null 2>&1; check "a public key: refused" 1 $?
absent "no keys.json after a refusal" nope.json
"$wg" google-keys --signing-key v1.pem --out keys.json > /dev/null 2>&1; check "existing keys.json: refused" 1 $?

# ---- google-packet -------------------------------------------------------------
run --label gpay-m1 googlepay-key > gp.out 2>&1; check "googlepay-key" 0 $?
grep -E '^[A-Za-z0-9+/]{87}=$' gp.out > gpay.pub
G=(--signing-key "$tink/GOOGLE_SIGNING_EC_V2_PRIVATE_KEY_PKCS8_BASE64.txt" --recipient-id merchant:m-1001
   --exp-month 12 --exp-year 2030)
"$wg" google-packet "${G[@]}" --recipient-pubkey gpay.pub --pan 5105105105105100 --eci 05 --out google.json > gg.out
check "google-packet ECv2 (the base64 point googlepay-key prints)" 0 $?
mode600 "the token" google.json
has "ECv2 token members in Google's order" '^\{"signature":"[^"]+","intermediateSigningKey":\{"signedKey":".+","signatures":\["[^"]+"\]\},"protocolVersion":"ECv2","signedMessage":"' google.json
has "signedMessage is sealed" 'signedMessage":"\{\\"encryptedMessage\\":\\"[^"]+\\",\\"ephemeralPublicKey\\":\\"[^"]+\\",\\"tag\\":\\"' google.json
hasnt "no card number in clear" "5105105105105100" google.json
"$wg" google-packet "${G[@]}" --recipient-pubkey "$tink/MERCHANT_PUBLIC_KEY_BASE64.txt" \
    --intermediate-key "$tink/GOOGLE_SIGNING_EC_V2_INTERMEDIATE_PRIVATE_KEY_PKCS8_BASE64.txt" \
    --pan 4111111111111111 --pan-only --out google-tink.json > /dev/null
check "google-packet with Tink's intermediate and merchant key, PAN_ONLY" 0 $?
grep -q -F "$(tr -d '\n' < "$tink/GOOGLE_SIGNING_EC_V2_INTERMEDIATE_PUBLIC_KEY_X509_BASE64.txt" | sed 's/=/\\\\u003d/g')" google-tink.json
check "Tink's intermediate key is the signed key (= as \\u003d, as Gson writes it)" 0 $?
"$wg" google-packet --signing-key v1.pem --protocol ECv1 --recipient-id merchant:m-1001 --exp-month 1 \
    --exp-year 2031 --recipient-pubkey ec.pub --pan 4111111111111111 --out google-v1.json > /dev/null
check "google-packet ECv1 (PEM SubjectPublicKeyInfo)" 0 $?
hasnt "ECv1 has no intermediate key" intermediateSigningKey google-v1.json
"$wg" google-packet "${G[@]}" --protocol ECv2SigningOnly --pan 4111111111111111 --out google-so.json > /dev/null
check "google-packet ECv2SigningOnly (not encrypted)" 0 $?
has "SigningOnly carries the message itself" 'paymentMethodDetails' google-so.json
"$wg" google-packet "${G[@]}" --recipient-pubkey gpay.pub --pan 4000056655665556 --out refused.json > /dev/null 2>&1
check "a card number not on the test list: usage" 2 $?
"$wg" google-packet "${G[@]}" --recipient-pubkey gpay.pub --pan 4111111111111111 --pan-only --eci 05 \
    --out refused.json > /dev/null 2>&1; check "--pan-only with an ECI: usage" 2 $?
"$wg" google-packet "${G[@]}" --pan 4111111111111111 --out refused.json > /dev/null 2>&1
check "ECv2 without --recipient-pubkey: usage" 2 $?
"$wg" google-packet "${G[@]}" --protocol ECv2SigningOnly --recipient-pubkey gpay.pub --pan 4111111111111111 \
    --out refused.json > /dev/null 2>&1; check "SigningOnly with a recipient key: usage" 2 $?
"$wg" google-packet --signing-key v1.pem --recipient-id shop:1 --exp-month 1 --exp-year 2031 \
    --recipient-pubkey gpay.pub --pan 4111111111111111 --out refused.json > /dev/null 2>&1
check "recipient id shop:1: usage" 2 $?
"$wg" google-packet --signing-key v1.pem --recipient-id merchant:1 --exp-month 13 --exp-year 2031 \
    --recipient-pubkey gpay.pub --pan 4111111111111111 --out refused.json > /dev/null 2>&1
check "expiry month 13: usage" 2 $?
"$wg" google-packet "${G[@]}" --recipient-pubkey rsa.csr --pan 4111111111111111 --out refused.json > /dev/null 2>&1
check "an RSA recipient key: refused" 1 $?
absent "no token after any refusal" refused.json

# ---- samsung-packet ------------------------------------------------------------
run --label spay-m1 --out spay.csr samsungpay-key > sk.out 2>&1; check "samsungpay-key" 0 $?
kid=$(spki_hash req spay.csr)
"$wg" samsung-packet --pubkey spay.csr --kid "$kid" --pan 4895370012003478 --expiry 1230 --amount 4250 \
    --currency USD --eci 5 --out samsung.jwe > /dev/null
check "samsung-packet (the CSR samsungpay-key writes)" 0 $?
mode600 "the JWE" samsung.jwe
same "five base64url parts" "$(tr -cd . < samsung.jwe | wc -c)" 4
unb64url "$(cut -d. -f1 samsung.jwe)" > header.json
same "the protected header Samsung sends" "$(cat header.json)" \
    "{\"alg\":\"RSA1_5\",\"kid\":\"$kid\",\"typ\":\"JOSE\",\"channelSecurityContext\":\"RSA_PKI\",\"enc\":\"A128GCM\"}"
same "the CEK is wrapped to RSA-2048" "$(unb64url "$(cut -d. -f2 samsung.jwe)" | wc -c)" 256
hasnt "no card number in clear" "4895370012003478" samsung.jwe
"$wg" samsung-packet --pubkey rsa.csr --kid k-1 --alg RSA-OAEP-256 --enc A256GCM --pan 5555555555554444 \
    --expiry 0131 --pan-only --credential --out samsung-cred.json > /dev/null
check "samsung-packet RSA-OAEP-256/A256GCM in a paymentCredential" 0 $?
has "paymentCredential with the card's brand and last 4" '"card_brand":"MC","card_last4digits":"4444","3DS":\{"data":"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.' samsung-cred.json
has "method 3DS" '"method":"3DS"' samsung-cred.json
"$wg" samsung-packet --pubkey ec.pub --kid k --pan 4111111111111111 --expiry 1230 --out refused.json > /dev/null 2>&1
check "an EC key: refused" 1 $?
"$wg" samsung-packet --pubkey rsa.csr --kid k --pan 4111111111111111 --expiry 1330 --out refused.json > /dev/null 2>&1
check "expiry month 13: usage" 2 $?
"$wg" samsung-packet --pubkey rsa.csr --kid 'a"b' --pan 4111111111111111 --expiry 1230 --out refused.json > /dev/null 2>&1
check "kid with a quote: usage" 2 $?
"$wg" samsung-packet --pubkey rsa.csr --kid k --alg dir --pan 4111111111111111 --expiry 1230 --out refused.json > /dev/null 2>&1
check "alg dir: usage" 2 $?
"$wg" samsung-packet --pubkey rsa.csr --kid k --currency usd --pan 4111111111111111 --expiry 1230 --out refused.json > /dev/null 2>&1
check "currency usd: usage" 2 $?
"$wg" samsung-packet --pubkey rsa.csr --kid k --pan 4000056655665556 --expiry 1230 --out refused.json > /dev/null 2>&1
check "a card number not on the test list: usage" 2 $?
absent "no packet after any refusal" refused.json

# ---- the service's wallet engine opens all three -------------------------------
sh "$(dirname "$0")/../support/make_certs.sh" "$dir/tls" > /dev/null 2>&1
cat > tv.conf <<CONF
[service]
listen = 127.0.0.1:17999
[tls]
cert = $dir/tls/server.pem
key = $dir/tls/server.key
client_ca = $dir/tls/ca.pem
[hsm]
module = $module
token = walletgen
pin_source = file
pin_file = $dir/pin
[store]
path = $dir/store
map_size_mb = 64
[client gateway]
subject = CN=gateway-test
roles = wallet
merchants = m-1001
[merchant m-1001]
applepay_keys = apple-m1
googlepay_recipient = merchant:m-1001
googlepay_keys = gpay-m1
samsungpay_keys = spay-m1:$kid
CONF
chmod 600 tv.conf
for p in apple.json:0492 google.json:5100 samsung.jwe:3478; do
    run --config tv.conf --merchant m-1001 --packet "${p%%:*}" wallet-check > wc.out 2>&1
    check "wallet-check opens ${p%%:*}" 0 $?
    has "${p%%:*}: the card's last 4" "last 4 ${p##*:}" wc.out
done

echo
if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
echo "all checks passed"
