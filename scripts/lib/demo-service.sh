#!/usr/bin/env bash
# The service half of scripts/demo: tokenvaultd on the demo token, the
# card-on-file job and wallet packets through the tokenvault command line.
# Usage: demo-service.sh STATE_DIR PKCS11_MODULE (the token and keys exist;
# the wallet ceremonies' files are in STATE_DIR/wallet).
set -euo pipefail
cd "$(dirname "$0")/../.."
state=$1
module=$2
export SOFTHSM2_CONF=$state/softhsm2.conf
bin=build/demo
port=${TV_DEMO_PORT:-17443}
year=$(( $(date -u +%Y) + 3 ))
wallet=$state/wallet
kid=$(cat "$wallet/samsungpay.kid")

# Certificates: a demo CA, the service's, and two clients: the gateway
# (store, list, wallet) and the settlement system (reveal). Merchant m-1001
# takes all three wallets with the keys of the wallet ceremonies.
sh tests/support/make_certs.sh "$state/tls" >/dev/null 2>&1
cat > "$state/tokenvault.conf" <<CONF
[service]
listen = 127.0.0.1:$port
officer_socket = $state/officer.sock
log_level = info
[tls]
cert = $state/tls/server.pem
key = $state/tls/server.key
client_ca = $state/tls/ca.pem
[hsm]
module = $module
token = tokenvault-demo
pin_source = file
pin_file = $state/user-pin
[store]
path = $state/store
map_size_mb = 64
[metrics]
textfile = $state/tokenvault.prom
interval_seconds = 5
[client gateway]
subject = CN=gateway-test
roles = store, list, wallet
merchants = m-1001, m-2002
[client settlement]
subject = CN=settlement-test
roles = reveal, list
merchants = *
[merchant m-1001]
applepay_keys = applepay-m1001
googlepay_recipient = merchant:m-1001
googlepay_keys = googlepay-m1001
samsungpay_keys = samsungpay-m1001:$kid
[merchant m-2002]
token_format = pan
CONF
chmod 600 "$state/tokenvault.conf"

echo "== tokenvaultd: starting on 127.0.0.1:$port (log: $state/tokenvaultd.log)"
"$bin/vault/tokenvaultd" --config "$state/tokenvault.conf" 2>"$state/tokenvaultd.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do
    grep -q 'event=service_started' "$state/tokenvaultd.log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$state/tokenvaultd.log"; exit 1; }
    sleep 0.1
done
grep -q 'event=service_started' "$state/tokenvaultd.log"
grep 'event=service_started' "$state/tokenvaultd.log"

export TOKENVAULT_SERVER=127.0.0.1:$port TOKENVAULT_CA=$state/tls/ca.pem TOKENVAULT_SERVER_NAME=localhost
gateway() { TOKENVAULT_CERT=$state/tls/client.pem TOKENVAULT_KEY=$state/tls/client.key "$bin/tools/tokenvault" "$@"; }
settlement() { TOKENVAULT_CERT=$state/tls/reveal-client.pem TOKENVAULT_KEY=$state/tls/reveal-client.key "$bin/tools/tokenvault" "$@"; }
field() { sed -n "s/^$1: //p"; }

# Test card numbers (the networks' published test PANs). Secrets go on stdin,
# never on the command line.
store() { # merchant customer pan
    printf 'pan=%s\nholder=Ada Lovelace\nemail=ada@example.com\n' "$3" |
        gateway card store --merchant "$1" --customer-number "$2" --exp-month 12 \
            --exp-year "$year" --consent yes --verification cvc2_3ds
}

echo
echo "== store a Visa card on file for customer C-42 of merchant m-1001"
out=$(store m-1001 C-42 4111111111111111); echo "$out"
token=$(echo "$out" | field serverCardId)
echo
echo "== the same card again: deduplicated by its keyed fingerprint, same token"
store m-1001 C-42 4111111111111111 | grep -E '^(serverCardId|dedup):'
echo
echo "== the same card for another customer, C-77: one record, linked"
store m-1001 C-77 4111111111111111 | grep -E '^(serverCardId|dedup):'
echo
echo "== a Mastercard for C-42, then C-42's token list (seed 003: token, last 4, BIN, brand, expiry)"
store m-1001 C-42 5555555555554444 | grep -E '^(serverCardId|brand|dedup):'
gateway card list --merchant m-1001 --customer-number C-42
echo
echo "== merchant m-2002 uses PAN-shaped tokens: BIN and last 4 kept, failing the Luhn check"
store m-2002 C-9 4111111111111111 | grep -E '^(serverCardId|bin|last4):'
echo
echo "== the gateway may not reveal (no reveal role): refused and audited"
set +e
gateway card reveal --merchant m-1001 --token "$token" --purpose authorization
echo "exit code $? (4 = DENIED)"
set -e
echo
echo "== the settlement system reveals it for an authorization (audited before the answer)"
settlement card reveal --merchant m-1001 --token "$token" --purpose authorization

# Wallet packets. tokenvault-walletgen plays each wallet (the test CA of the
# ceremony, Tink's Google test key, Samsung's JWE to the merchant's key) and
# makes one packet for m-1001, as a phone would hand it to the gateway; the
# gateway sends it with the wallet role. The DPANs are test card numbers.
walletgen=$bin/tools/tokenvault-walletgen
packets=$state/wallet-packets
mkdir -m 700 "$packets"
yy=$(printf %02d $(( year % 100 )))
echo
echo "== wallet packets for m-1001, made by walletgen playing Apple, Google and Samsung"
"$walletgen" apple-packet --dir "$wallet/apple-ca" --version EC_v1 --cert "$wallet/applepay-cert.pem" \
    --pan 4761120010000492 --expiry "${yy}1231" --amount 4250 --currency 840 \
    --eci 05 --out "$packets/apple.json"
"$walletgen" google-packet --protocol ECv2 \
    --signing-key tests/vectors/tink-paymentmethodtoken/GOOGLE_SIGNING_EC_V2_PRIVATE_KEY_PKCS8_BASE64.txt \
    --recipient-id merchant:m-1001 --recipient-pubkey "$wallet/googlepay.pub" \
    --pan 5105105105105100 --exp-month 12 --exp-year "$year" --eci 05 \
    --out "$packets/google.json"
"$walletgen" samsung-packet --pubkey "$wallet/samsungpay.csr" --kid "$kid" --credential \
    --pan 4895370012003478 --expiry "12$yy" --amount 4250 --currency USD \
    --eci 05 --out "$packets/samsung.json"
# The answer carries the cryptogram once, for the authorization; the demo
# says it is there and does not print it, and keeps it only for the scan of
# the store and the log at the end (it must never be stored).
decrypt() { # wallet file [expected amount and currency]
    gateway wallet decrypt --merchant m-1001 --wallet "$1" --packet "$packets/$2" ${3:+--amount "$3" --currency "$4"}
}
shown() {
    sed -e 's/^cryptogram: .*/cryptogram: present (not shown)/' |
        grep -E '^(serverCardId|kind|wallet|walletVersion|bin|last4|brand|cryptogram|eci|authMethod|amount|currency):'
}
echo
echo "== Apple Pay (EC_v1): signature to the Apple root, ECDH and GCM in the HSM; the DPAN vaulted"
out=$(decrypt apple_pay apple.json 4250 USD); echo "$out" | shown
dpan_token=$(echo "$out" | field serverCardId)
crypto_apple=$(echo "$out" | field cryptogram)
echo
echo "== Google Pay (ECv2): intermediate and message signatures to Google's root, ECIES in the HSM"
out=$(decrypt google_pay google.json); echo "$out" | shown
crypto_google=$(echo "$out" | field cryptogram)
echo
echo "== Samsung Pay (JWE RSA1_5/A128GCM): the content key unwrapped in the HSM"
out=$(decrypt samsung_pay samsung.json 4250 USD); echo "$out" | shown
crypto_samsung=$(echo "$out" | field cryptogram)
echo
echo "== the same Apple Pay packet again: refused as a replay"
set +e
decrypt apple_pay apple.json 4250 USD
echo "exit code $? (6 = refused by a business rule: REPLAYED)"
set -e
echo
echo "== the settlement system reveals the Apple Pay DPAN for the authorization"
settlement card reveal --merchant m-1001 --token "$dpan_token" --purpose authorization
unset out
echo
echo "== service status"
gateway service status
echo
echo "== hot backup of the store while the service runs"
backup=$state/backup-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -m 700 "$backup"
"$bin/tools/tokenvault-admin" backup --store "$state/store" --out "$backup"
echo
echo "== stop (SIGTERM drains and commits), then look for the card numbers in the files"
kill -TERM "$pid"
wait "$pid" || true
trap - EXIT
for pan in 4111111111111111 5555555555554444 'Ada Lovelace' ada@example.com \
           4761120010000492 5105105105105100 4895370012003478 \
           "$crypto_apple" "$crypto_google" "$crypto_samsung"; do
    [ -n "$pan" ] || { echo "a wallet answer had no cryptogram" >&2; exit 1; }
    for f in "$state/store/data.mdb" "$state/tokenvaultd.log" "$state/tokenvault.prom"; do
        if grep -q -F -a "$pan" "$f"; then
            echo "FOUND '$pan' in $f" >&2
            exit 1
        fi
    done
done
echo "no PAN, DPAN, cryptogram, holder or e-mail in clear in the store, the log or the metrics"
echo
echo "demo state (token, PIN file, config, store, log) is in $state"
