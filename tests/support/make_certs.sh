#!/bin/sh
# make_certs.sh DIR - test certificates for the client and the in-test server,
# made with the openssl command line (EC P-256, valid 2 days):
#   ca.pem ca.key                 the test CA
#   server.pem server.key         CN=localhost, SAN DNS:localhost, IP:127.0.0.1, serverAuth
#   client.pem client.key         CN=gateway-test, clientAuth
#   rogue-ca.pem rogue-ca.key     another CA
#   rogue-client.pem rogue-client.key   a client certificate from the other CA
#   list-client, other-client, reveal-client, unknown-client (.pem/.key)
#                                 more clients of the test CA, for role tests:
#                                 CN=gateway-list, gateway-other,
#                                 settlement-test, nobody
# Keys are 0600. Running it again replaces everything. Test material only.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
mkdir -p "$dir"
umask 077

# A new key, mode 0600 even when it replaces a file of another mode.
key() {
    rm -f "$dir/$1"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$1" 2>/dev/null
    chmod 600 "$dir/$1"
}

serial() {
    echo "0x$(openssl rand -hex 8)"
}

# ca NAME CN
ca() {
    key "$1.key"
    openssl req -x509 -new -key "$dir/$1.key" -subj "/CN=$2" -days 2 -sha256 \
        -set_serial "$(serial)" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$dir/$1.pem"
    chmod 644 "$dir/$1.pem"
}

# leaf NAME CA CN EXTENSIONS
leaf() {
    key "$1.key"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "$4" > "$dir/$1.ext"
    openssl req -new -key "$dir/$1.key" -subj "/CN=$3" -out "$dir/$1.csr"
    openssl x509 -req -in "$dir/$1.csr" -CA "$dir/$2.pem" -CAkey "$dir/$2.key" \
        -set_serial "$(serial)" -days 2 -sha256 -extfile "$dir/$1.ext" \
        -out "$dir/$1.pem" 2>/dev/null
    chmod 644 "$dir/$1.pem"
    rm -f "$dir/$1.csr" "$dir/$1.ext"
}

ca ca "tokenvault test CA"
ca rogue-ca "rogue test CA"
leaf server ca localhost "extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"
leaf client ca gateway-test "extendedKeyUsage=clientAuth"
leaf rogue-client rogue-ca gateway-test "extendedKeyUsage=clientAuth"
leaf list-client ca gateway-list "extendedKeyUsage=clientAuth"
leaf other-client ca gateway-other "extendedKeyUsage=clientAuth"
leaf reveal-client ca settlement-test "extendedKeyUsage=clientAuth"
leaf unknown-client ca nobody "extendedKeyUsage=clientAuth"
