# Installs the Debian packages tokenvault needs, and nothing when they are all there.
# Sourced by scripts/demo, scripts/test and scripts/lint; runs as root on a fresh
# Debian 12 machine.

TV_PACKAGES="build-essential cmake pkg-config clang libclang-rt-14-dev
 libssl-dev openssl liblmdb-dev libuv1-dev libjansson-dev libinih-dev libgfshare-dev
 libcmocka-dev libp11-kit-dev softhsm2 libnss3 libnss3-tools
 cppcheck clang-tidy jq"

tv_install_deps() {
    local missing="" p
    for p in $TV_PACKAGES; do
        # dpkg-query prints "install ok installed" only for a fully installed package.
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing="$missing $p"
        fi
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "tokenvault: missing Debian packages:$missing (run as root, or install them)" >&2
        return 1
    fi
    echo "tokenvault: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
}
