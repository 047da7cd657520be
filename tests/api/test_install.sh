#!/bin/sh
# test_install.sh BUILD_DIR CC [CFLAGS...] - installs libtokenvault from
# BUILD_DIR into a temporary prefix and builds against it as a gateway would,
# with nothing but `pkg-config --cflags --libs tokenvault`: each installed
# header must compile on its own, and a program using the client must link
# and run. Extra CFLAGS (the sanitizer flags of a sanitizer build) are passed
# to every compile and link.
set -eu

if [ $# -lt 2 ]; then
    echo "usage: $0 BUILD_DIR CC [CFLAGS...]" >&2
    exit 2
fi
build=$1
cc=$2
shift 2
tmp=$(mktemp -d /tmp/tv-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

for component in libtokenvault libtokenvault-dev; do
    cmake --install "$build" --prefix "$prefix" --component "$component" >/dev/null
done
pc=$(find "$prefix" -name tokenvault.pc)
[ -n "$pc" ] || { echo "tokenvault.pc not installed" >&2; exit 1; }
PKG_CONFIG_PATH=${pc%/*}
export PKG_CONFIG_PATH
cflags=$(pkg-config --cflags tokenvault)
libs=$(pkg-config --libs tokenvault)
libdir=$(pkg-config --variable=libdir tokenvault)
strict="-std=c11 -pedantic -Wall -Wextra -Werror -Wstrict-prototypes"

# Exactly the public headers, each self-contained.
for h in proto reader writer msg frame client; do
    [ -f "$prefix/include/tokenvault/api/$h.h" ] || { echo "api/$h.h not installed" >&2; exit 1; }
    printf '#include <api/%s.h>\nint tv_install_%s;\n' "$h" "$h" > "$tmp/h_$h.c"
    # shellcheck disable=SC2086
    "$cc" $strict $cflags "$@" -c "$tmp/h_$h.c" -o "$tmp/h_$h.o"
done
n=$(find "$prefix/include" -type f | wc -l)
[ "$n" -eq 6 ] || { echo "expected 6 installed headers, found $n" >&2; exit 1; }

cat > "$tmp/gateway.c" <<'PROGRAM'
#include <api/client.h>
#include <stdio.h>
#include <string.h>

int
main(void)
{
    struct api_client_config cfg;
    struct api_client *c = NULL;
    struct api_ping_req req;
    struct api_ping_resp resp;
    struct api_error_resp err;
    int r;

    memset(&cfg, 0, sizeof(cfg));
    memset(&req, 0, sizeof(req));
    cfg.unix_path = "/nonexistent/tokenvault.sock";
    if (api_client_new(&c, &cfg) != 0)
        return 1;
    r = api_call_ping(c, &req, &resp, &err);
    api_client_free(c);
    printf("%s\n", api_strerror(r));
    return r == API_ERR_CONNECT ? 0 : 1;
}
PROGRAM
# shellcheck disable=SC2086
"$cc" $strict $cflags "$@" "$tmp/gateway.c" -o "$tmp/gateway" $libs
out=$(LD_LIBRARY_PATH=$libdir "$tmp/gateway")
[ "$out" = "API_ERR_CONNECT" ] || { echo "gateway printed '$out'" >&2; exit 1; }
# It ran against the installed library, found through its soname.
LD_LIBRARY_PATH=$libdir ldd "$tmp/gateway" | grep -q "$libdir/libtokenvault.so" ||
    { echo "gateway did not load the installed libtokenvault" >&2; exit 1; }
echo "installed libtokenvault: headers self-contained, gateway builds and runs"
