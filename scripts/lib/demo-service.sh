#!/usr/bin/env bash
# The service half of scripts/demo: tokenvaultd on the demo token, the
# card-on-file job, wallet packets, a mobile sale and a repeat sale, a
# subscription's charges inside and outside its mandate, and a QR payment,
# through the tokenvault command line.
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
# (store, list, wallet; session, mandate and qr for the payment flows) and the
# settlement system (reveal, and mandate: it sends charges on to the network,
# so its CIT and MIT answers carry the PAN). Merchant m-1001 takes all three
# wallets with the keys of the wallet ceremonies.
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
roles = store, list, wallet, session, mandate, qr
merchants = m-1001, m-2002
[client settlement]
subject = CN=settlement-test
roles = reveal, list, mandate
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

# Payment flows for m-1001 (docs/OPERATIONS.md): a mobile sale and a repeat
# sale (seed 002), a subscription charged inside and outside its mandate and a
# one-click charge (seed 003), a QR payment (seeds 001 and 004). The gateway
# has the session, mandate and qr roles; the settlement system, which sends
# charges on to the network, also has mandate, and only its answers carry the
# PAN (it has reveal). Refusals are checked, not only shown: the demo stops
# when a step is not refused as it should be.

# refused EXIT 'STATUS[*DETAIL]' COMMAND...: COMMAND must fail with exit code
# EXIT and a message that names STATUS (and DETAIL); shows both.
refused() {
    local code=$1 want=$2 rc msg; shift 2
    set +e; msg=$("$@" 2>&1); rc=$?; set -e
    echo "$msg"
    case $msg in *$want*) ;; *) rc="$rc, expected ${want//\*/ ...}" ;; esac
    [ "$rc" = "$code" ] || { echo "demo: not refused as expected (exit code $rc)" >&2; exit 1; }
    echo "exit code $rc (6 = refused by a business rule: ${want%%\**})"
}
hex() { od -An -v -tx1 | tr -d ' \n'; }
utc() { # adds the UTC time to lines with Unix seconds
    local line
    while IFS= read -r line; do
        case $line in
        expiresAt:*|paidAt:*) echo "$line ($(date -u -d "@${line#*: }" +%FT%TZ))" ;;
        *) echo "$line" ;;
        esac
    done
}

# The app's access token stays with the merchant: the vault sees its SHA-256.
access_token=demo-app-access-token-$(openssl rand -hex 16)
ath=$(printf %s "$access_token" | sha256sum | cut -d' ' -f1)
device_text='deviceId=7f3a91c2-demo;model=Pixel 8;os=Android 14;app=shop 3.2'
device=$(printf %s "$device_text" | hex)
session_init() { # amount
    gateway session init --merchant m-1001 --access-token-hash "$ath" --amount "$1" \
        --currency EUR --device-data "$device"
}
session_check() { # nonce signature amount [options]; an e-mail on stdin
    local n=$1 s=$2 a=$3; shift 3
    gateway session check --merchant m-1001 --nonce "$n" --signature "$s" \
        --access-token-hash "$ath" --amount "$a" --currency EUR --device-data "$device" "$@"
}
echo
echo "== mobile sale (seed 002): the merchant's server starts a session for 25.99 EUR"
echo "accessTokenHash: $ath (SHA-256 of the app's access token)"
echo "deviceData: $device_text (sent as hex)"
out=$(session_init 2599); echo "$out" | grep -E '^(nonce|signature|expiresAt):' | utc
nonce=$(echo "$out" | field nonce); sig=$(echo "$out" | field signature)
echo
echo "== perform sale: the app's data checked against the session (signature verified in the HSM)"
session_check "$nonce" "$sig" 2599 </dev/null
echo "OK: the sale matches its session, which is now consumed"
echo
echo "== the same perform sale again: refused"
refused 6 REPLAYED session_check "$nonce" "$sig" 2599 </dev/null
echo
echo "== a fresh session for 25.99 EUR; the app's perform sale says 29.99: refused, naming the field"
out=$(session_init 2599)
refused 6 'MISMATCH*amount' session_check "$(echo "$out" | field nonce)" \
    "$(echo "$out" | field signature)" 2999 </dev/null

# The consumer's e-mail goes on stdin; the vault keeps only a keyed
# fingerprint of it (HMAC in the HSM), bound to the mapping.
email=ada.mobile@example.org
other_email=someone.else@example.net
echo
echo "== card mapping: the app's clientCardId app-card-7 -> the Visa's token, bound to the consumer's e-mail"
printf 'email=%s\n' "$email" |
    gateway map create --merchant m-1001 --client-card-id app-card-7 --token "$token"
echo "OK: app-card-7 -> $token"
echo
echo "== resolve app-card-7 with the same e-mail: the token"
printf 'email=%s\n' "$email" | gateway map resolve --merchant m-1001 --client-card-id app-card-7
echo
echo "== resolve app-card-7 with another e-mail: refused"
printf 'email=%s\n' "$other_email" |
    refused 6 'MISMATCH*email' gateway map resolve --merchant m-1001 --client-card-id app-card-7
echo
echo "== repeat sale: a new session for 42.00 EUR; perform sale names app-card-7 and the e-mail"
out=$(session_init 4200)
out=$(printf 'email=%s\n' "$email" | session_check "$(echo "$out" | field nonce)" \
          "$(echo "$out" | field signature)" 4200 --client-card-id app-card-7)
echo "$out" | grep -E '^serverCardId:'
[ "$(echo "$out" | field serverCardId)" = "$token" ]
echo "OK: the stored Visa's token; the gateway never handled the PAN"

# A subscription (seed 003): the first payment's card kept with the payer's
# consent and the network's transaction id, then a recurring mandate on it.
# MIT charges carry today's date (UTC): a charge may not be dated before the
# mandate was made or after today.
cvc=7319
today=$(date -u +%F)
echo
echo "== subscription (seed 003): customer C-55's Amex stored with consent; its CVC asked for one-click charges"
out=$(printf 'pan=378282246310005\nholder=Grace Hopper\n' |
          gateway card store --merchant m-1001 --customer-number C-55 --exp-month 12 \
              --exp-year "$year" --consent yes --verification cvc2_3ds --need-cvc yes \
              --initial-txn-id NTI-580421337)
echo "$out" | grep -E '^(serverCardId|brand|last4|needCVC):'
sub=$(echo "$out" | field serverCardId)
echo
echo "== mandate: recurring, 5.00 to 20.00 EUR, at most every 30 days, until 31.12.$year"
out=$(gateway mandate create --merchant m-1001 --token "$sub" --customer-number C-55 \
          --mandate-kind recurring --min-amount 500 --max-amount 2000 --currency EUR \
          --recurring-count 30 --recurring-max-date "31.12.$year")
echo "$out" | grep -E '^(mandateId|mandateKind|mandateStatus|RecurringMinAmount|RecurringMaxAmount|RecurringCount|RecurringMaxDate):'
mandate=$(echo "$out" | field mandateId)
mit() { # amount
    gateway mit authorize --merchant m-1001 --token "$sub" --mandate-id "$mandate" \
        --amount "$1" --currency EUR --date "$today"
}
echo
echo "== MIT inside the limits: 15.00 EUR on $today, approved"
out=$(mit 1500); echo "$out" | grep -E '^(approval|lastChargeDate|chargeCount|initialTransactionId):'
if echo "$out" | grep -q '^pan:'; then echo "demo: the gateway got a PAN" >&2; exit 1; fi
echo "pan: not in the gateway's answer (no reveal role)"
echo
echo "== another 15.00 EUR in the same period (30 days have not passed): refused"
refused 6 'LIMIT_EXCEEDED*rule frequency' mit 1500
echo
echo "== 25.00 EUR, above the mandate's maximum: refused"
refused 6 'LIMIT_EXCEEDED*rule max_amount' mit 2500
echo
echo "== the payer cancels the subscription (through the merchant)"
gateway mandate cancel --merchant m-1001 --token "$sub" --mandate-id "$mandate" --cancelled-by payer |
    grep -E '^(mandateStatus|cancelledBy|chargeCount|lastChargeDate):'
echo
echo "== a MIT on the cancelled mandate: refused"
refused 6 INACTIVE mit 1500
echo
echo "== one click (CIT), 49.90 EUR with the CVC on stdin, sent by the settlement system: PAN and CVC to it alone"
out=$(printf 'cvc=%s\n' "$cvc" |
          settlement cit authorize --merchant m-1001 --token "$sub" --customer-number C-55 \
              --amount 4990 --currency EUR)
echo "$out" | sed -e 's/^cvc: .*/cvc: as received, for this authorization only (not shown)/' |
    grep -E '^(approval|needCVC|pan|expMonth|expYear|cvc|initialTransactionId):'

# QR payments: the vault keeps the order and answers an opaque token for the
# QR URL; the payer's wallet reports the payment and the gateway redeems it.
echo
echo "== QR payment (seeds 001, 004): a payment request for order SN129803, 123.45 EUR, valid 5 minutes"
out=$(gateway qr issue --merchant m-1001 --order-id SN129803 --amount 12345 --currency EUR --lifetime 300)
echo "$out" | grep -E '^(qrToken|expiresAt):' | utc
qr=$(echo "$out" | field qrToken)
echo "QR URL: https://pay.example/q/$qr"
if command -v qrencode >/dev/null; then
    qrencode -t ansiutf8 "https://pay.example/q/$qr"
else
    echo "(qrencode is not installed: with it, the demo draws the code here)"
fi
echo
echo "== the order's state before payment"
gateway qr status --merchant m-1001 --order-id SN129803 | grep -E '^(orderId|qrState|amount|currency|expiresAt):' | utc
echo
echo "== the payer's wallet reports it paid: redeemed once, with what the merchant notification needs"
gateway qr redeem --merchant m-1001 --qr-token "$qr" --payer-ref wallet-42 |
    grep -E '^(orderId|amount|currency|paidAt):' | utc
echo
echo "== the same QR redeemed again: refused"
refused 6 REPLAYED gateway qr redeem --merchant m-1001 --qr-token "$qr" --payer-ref wallet-77
echo
echo "== the order's state after payment"
gateway qr status --merchant m-1001 --order-id SN129803 | grep -E '^(orderId|qrState|paidAt|payerRef):' | utc
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
echo "== the backup checked offline: every index points to its record, the audit chain is whole"
"$bin/tools/tokenvault-admin" check --store "$backup"
echo
echo "== stop (SIGTERM drains and commits), then look for the card numbers in the files"
kill -TERM "$pid"
wait "$pid" || true
trap - EXIT
# The CVC is 4 digits, which could turn up by chance inside a longer number
# or a hex string: it is looked for as a word of its own (grep -w).
files=("$state/store/data.mdb" "$state/tokenvaultd.log" "$state/tokenvault.prom")
for pan in 4111111111111111 5555555555554444 'Ada Lovelace' ada@example.com \
           4761120010000492 5105105105105100 4895370012003478 \
           "$crypto_apple" "$crypto_google" "$crypto_samsung" \
           378282246310005 'Grace Hopper' "$email" "$other_email" \
           "$access_token" "$device_text"; do
    [ -n "$pan" ] || { echo "a wallet answer had no cryptogram" >&2; exit 1; }
    for f in "${files[@]}"; do
        if grep -q -F -a "$pan" "$f"; then
            echo "FOUND '$pan' in $f" >&2
            exit 1
        fi
    done
done
for f in "${files[@]}"; do
    if grep -q -F -a -w "$cvc" "$f"; then
        echo "FOUND the CVC '$cvc' in $f" >&2
        exit 1
    fi
done
echo "no PAN, DPAN, cryptogram, CVC, holder, e-mail, access token or device data in clear"
echo "in the store, the log or the metrics"
echo
echo "demo state (token, PIN file, config, store, log) is in $state"
