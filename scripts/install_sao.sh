#!/usr/bin/env bash
# Install the Tryton web client "sao" into <target-dir> so trytond can serve it
# with "[web] root = <target-dir>".
#
# sao's npm package ships built files (dist/) but its postinstall runs bower,
# which refuses to run as root and needs registries we cannot reach. So we
# fetch every tarball with "npm pack" (no scripts, no dependency resolution)
# and lay them out under bower_components/ exactly where index.html and the
# compiled CSS look for them.
#
# Usage: scripts/install_sao.sh <target-dir>
set -euo pipefail

# sao must match the trytond series (7.0); take the newest 7.0 release.
SAO_VERSION=7.0.56
# bower_components/<dir> -> npm package@version. Versions are the newest that
# satisfy sao 7.0's bower.json (jquery ^3, bootstrap ^3.3.7, moment ^2.10,
# gettext.js ^0.7, c3 ^0.7, papaparse ^5.0, fullcalendar ^3.10.2,
# mousetrap ^1.6, Sortable ^1.8.4) and c3's own "d3": "^5.8.0".
# bootstrap-rtl-ondemand is left out: it is only a LESS source already
# compiled into dist/tryton-sao.css.
LIBS=(
  jquery=jquery@3.8.0
  bootstrap=bootstrap@3.4.1
  moment=moment@2.31.0
  gettext.js=gettext.js@0.7.0
  d3=d3@5.16.0
  c3=c3@0.7.20
  papaparse=papaparse@5.7.1
  fullcalendar=fullcalendar@3.10.5
  mousetrap=mousetrap@1.6.5
  Sortable=sortablejs@1.15.7
)
# Any change of a pin changes the stamp and so forces a reinstall.
STAMP="tryton-sao@${SAO_VERSION} ${LIBS[*]}"

die() { echo "install_sao: ERROR: $*" >&2; exit 1; }

[[ $# -eq 1 && -n $1 ]] || die "usage: $0 <target-dir>"
command -v npm >/dev/null || die "npm is not installed (apt-get install -y npm)"
TARGET=$(realpath -m -- "$1")

# List every local file the client needs that is missing in dir $1: the
# src/href of index.html (custom.js/css included, README.md of its error
# message) and the url()s of each stylesheet (bootstrap's glyphicon fonts).
missing_files() {
  local dir=$1 ref url css
  [[ -f $dir/index.html ]] || { echo index.html; return; }
  { grep -oE '(src|href)="[^"]+"' "$dir/index.html" || true; } | cut -d'"' -f2 | while read -r ref; do
    [[ $ref =~ ^([a-z]+:|//|#) ]] && continue
    [[ -f $dir/${ref%%[?#]*} ]] || { echo "$ref"; continue; }
    [[ $ref == *.css ]] || continue
    css=$dir/$ref
    { grep -oE 'url\([^)]+\)' "$css" || true; } | sed -E "s/^url\([\"']?//; s/[\"']?\)$//" | while read -r url; do
      [[ $url =~ ^([a-z]+:|//|#) ]] && continue
      [[ -f $(dirname "$css")/${url%%[?#]*} ]] || echo "$url (from $ref)"
    done
  done
  # Loaded at run time by sao, not referenced by index.html.
  compgen -G "$dir/locale/*.json" >/dev/null || echo "locale/*.json"
  compgen -G "$dir/images/*.svg" >/dev/null || echo "images/*.svg"
}

# Fast path: the stamp is written last, so a matching stamp plus no missing
# file means a complete install of exactly these pins.
if [[ -f $TARGET/.sao-version && $(<"$TARGET/.sao-version") == "$STAMP" \
      && -z $(missing_files "$TARGET") ]]; then
  echo "install_sao: sao $SAO_VERSION already installed in $TARGET"
  exit 0
fi

# Never wipe a directory that is not a sao install.
if [[ -e $TARGET ]]; then
  [[ -d $TARGET ]] || die "$TARGET exists and is not a directory"
  if [[ -n $(ls -A "$TARGET") && ! -f $TARGET/.sao-version ]] \
     && ! grep -qs 'tryton-sao' "$TARGET/index.html"; then
    die "$TARGET is not empty and does not look like a sao install; refusing to replace it"
  fi
fi

# Stage next to the target so the final mv is a rename on one filesystem.
PARENT=$(dirname "$TARGET")
mkdir -p "$PARENT"
# Leftovers of runs killed with SIGKILL (recent ones may still be running).
find "$PARENT" -maxdepth 1 -name '.sao-stage.*' -mmin +60 -exec rm -rf {} +
STAGE=$(mktemp -d "$PARENT/.sao-stage.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
trap 'exit 130' INT   # so that Ctrl-C and kill also run the EXIT trap
trap 'exit 143' TERM
WWW=$STAGE/www
mkdir -p "$STAGE/npm" "$WWW/bower_components"

echo "install_sao: fetching tryton-sao@$SAO_VERSION and ${#LIBS[@]} libraries from npm"
# shellcheck disable=SC2046  # word splitting of the spec list is intended
(cd "$STAGE/npm" && npm pack --no-audit --no-fund --loglevel=error --ignore-scripts \
   "tryton-sao@$SAO_VERSION" $(printf '%s\n' "${LIBS[@]}" | cut -d= -f2) >/dev/null) \
  || die "npm pack failed (is the npm registry reachable?)"

# Unpack npm tarball "$1" (name@version) into directory $2.
unpack() {
  local tgz=$STAGE/npm/${1/@/-}.tgz
  [[ -f $tgz ]] || die "npm pack did not produce $(basename "$tgz")"
  mkdir -p "$2"
  tar -xzf "$tgz" -C "$2" --strip-components=1 --no-same-owner
}

unpack "tryton-sao@$SAO_VERSION" "$STAGE/sao"
# Only the run-time parts of sao: sources, tests and .po files are not served.
cp -r "$STAGE/sao/"{index.html,dist,images,sounds,COPYRIGHT,LICENSE,README.md} "$WWW/"
mkdir -p "$WWW/locale"
cp "$STAGE/sao/locale/"*.json "$WWW/locale/"

for lib in "${LIBS[@]}"; do
  unpack "${lib#*=}" "$WWW/bower_components/${lib%%=*}"
done
# bower's d3 had d3.min.js at its root; npm's d3 keeps it in dist/.
cp "$WWW/bower_components/d3/dist/d3.min.js" "$WWW/bower_components/d3/"

# index.html always loads custom.js/custom.css; keep the site's own ones
# across reinstalls, else serve empty ones instead of 404s.
for f in custom.js custom.css; do
  if [[ -f $TARGET/$f ]]; then cp "$TARGET/$f" "$WWW/$f"; else : >"$WWW/$f"; fi
done

missing=$(missing_files "$WWW")
[[ -z $missing ]] || die "files referenced by sao are missing:"$'\n'"$missing"

# trytond may run as another user: everything must be world-readable.
chmod -R u+rwX,go+rX-w "$WWW"
echo "$STAMP" >"$WWW/.sao-version"

# Swap in the new tree; the old one (if any) goes into $STAGE and is removed
# by the trap. An interrupted run leaves either the old tree or no tree, never
# a partial one carrying a valid stamp.
[[ -e $TARGET ]] && mv -T "$TARGET" "$STAGE/old"
mv -T "$WWW" "$TARGET"
echo "install_sao: sao $SAO_VERSION installed in $TARGET"
