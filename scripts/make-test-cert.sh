#!/bin/sh
# Makes a throwaway certificate authority, a server certificate and a
# client certificate with the openssl tool, for trying TLS out and for the
# tests; never for production (docs/tls.md says where real ones come from).
#
#     scripts/make-test-cert.sh DIR [--days N] [--name HOST]...
#
# Writes into DIR (created if missing; files there are replaced):
#   ca.pem, ca.key          the authority (self-signed), which signs:
#   server.pem, server.key  a server certificate for localhost, 127.0.0.1
#                           and ::1, and each --name HOST given
#   client.pem, client.key  a client certificate (CN=client)
# Keys are ECDSA P-256, unencrypted, mode 0600. Valid --days N days
# (default 30). The openssl tool is installed when missing
# (scripts/need-packages.sh). Prints the files' names.
set -eu
usage() {
    echo "usage: $0 DIR [--days N] [--name HOST]..." >&2
    exit 2
}
[ $# -ge 1 ] || usage
dir="$1"
shift
days=30
names="DNS:localhost,IP:127.0.0.1,IP:::1"
while [ $# -gt 0 ]; do
    case "$1" in
    --days) [ $# -ge 2 ] || usage; days="$2"; shift 2 ;;
    --name) [ $# -ge 2 ] || usage; names="$names,DNS:$2"; shift 2 ;;
    *) usage ;;
    esac
done
case "$days" in '' | *[!0-9]*) usage ;; esac
command -v openssl >/dev/null 2>&1 ||
    "$(dirname "$0")/need-packages.sh" "$0" openssl
mkdir -p "$dir"
umask 077
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# $1 name, $2 subject, $3 extensions: a key and a certificate signed by the CA.
issue() {
    key "$dir/$1.key"
    openssl req -new -key "$dir/$1.key" -subj "$2" -out "$tmp/$1.csr"
    printf '%s\n' "$3" >"$tmp/$1.ext"
    openssl x509 -req -in "$tmp/$1.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -CAserial "$tmp/ca.srl" -days "$days" -sha256 \
        -extfile "$tmp/$1.ext" -out "$dir/$1.pem" 2>/dev/null
}

key "$dir/ca.key"
openssl req -new -x509 -key "$dir/ca.key" -subj "/O=socketserver test/CN=Test CA $$" \
    -days "$days" -sha256 -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/ca.pem"
issue server "/O=socketserver test/CN=localhost" \
    "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$names"
issue client "/O=socketserver test/CN=client" \
    "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
chmod 644 "$dir/ca.pem" "$dir/server.pem" "$dir/client.pem"
for f in ca.pem ca.key server.pem server.key client.pem client.key; do
    echo "$dir/$f"
done
