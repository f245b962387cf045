#!/usr/bin/env bash
# Install the Debian packages JiveX-Py needs when they are missing.
#   install-system-deps.sh run    Qt's xcb libraries for a real window; DejaVu Sans
#                                 (Latin, Greek, Cyrillic) for text burnt into images
#   install-system-deps.sh test   DCMTK, Orthanc and dicom3tools (the real peers of
#                                 the tests; dciodvfy checks the objects they make),
#                                 GDCM's tools (gdcmconv decompresses what DCMTK
#                                 cannot, for the rendering comparison), DejaVu Sans
#   install-system-deps.sh shots  Xvfb and ImageMagick, for screenshots
#   install-system-deps.sh bench  DCMTK and Orthanc (benchmark peers)
set -euo pipefail

want=()
need() {  # need COMMAND-OR-FILE PACKAGE
    if [[ "$1" == /* ]]; then [[ -e "$1" ]] || want+=("$2")
    else command -v "$1" >/dev/null 2>&1 || want+=("$2"); fi
}

for role in "$@"; do
    case "$role" in
        run)
            need /usr/lib/x86_64-linux-gnu/libxcb-cursor.so.0 libxcb-cursor0
            need /usr/lib/x86_64-linux-gnu/libxcb-icccm.so.4 libxcb-icccm4
            need /usr/lib/x86_64-linux-gnu/libxcb-keysyms.so.1 libxcb-keysyms1
            need /usr/lib/x86_64-linux-gnu/libEGL.so.1 libegl1
            need /usr/lib/x86_64-linux-gnu/libxkbcommon-x11.so.0 libxkbcommon-x11-0
            need /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf fonts-dejavu-core
            ;;
        test)
            need storescu dcmtk
            need Orthanc orthanc
            need dciodvfy dicom3tools
            need gdcmconv libgdcm-tools
            need /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf fonts-dejavu-core
            ;;
        shots)
            need xvfb-run xvfb
            need import imagemagick
            ;;
        bench)
            need storescu dcmtk
            need Orthanc orthanc
            ;;
        *) echo "unknown role '$role' (run, test, shots, bench)" >&2; exit 2 ;;
    esac
done

if [[ "$(uname -m)" != "x86_64" ]]; then
    # Library paths above are for x86_64; elsewhere ask dpkg instead.
    filtered=()
    for pkg in "${want[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || filtered+=("$pkg")
    done
    want=("${filtered[@]}")
fi

(( ${#want[@]} )) || exit 0
mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
echo "Installing Debian packages: ${want[*]}" >&2
sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
