#!/bin/sh
# Certificates of FerretDB's TLS listener, made once on the controller (the ferretdb role runs
# this with `creates`): a private CA, the server's certificate for its address, and the one
# client certificate the platform's hosts present (FerretDB on SQLite has no passwords: the
# certificate is the credential). Everything stays in DIR (0700, files 0600); the CA's key
# never leaves it.
#   make-tls.sh DIR SERVER_IP
set -eu
dir=$1
ip=$2
umask 077
mkdir -p "$dir"
cd "$dir"
days=3650
if [ ! -s ca.crt ]; then
    openssl req -x509 -newkey rsa:3072 -nodes -days "$days" -subj "/CN=Altcraft documents CA" \
        -keyout ca.key -out ca.crt 2>/dev/null
fi
sign() {  # name subject extensions
    openssl req -new -newkey rsa:3072 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
if [ ! -s "server-$ip.crt" ]; then
    sign "server-$ip" "/CN=$ip" "subjectAltName=IP:$ip
extendedKeyUsage=serverAuth"
fi
if [ ! -s client.pem ]; then
    sign client "/CN=altcraft" "extendedKeyUsage=clientAuth"
    cat client.key client.crt >client.pem
fi
