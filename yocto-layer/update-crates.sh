#!/usr/bin/env bash
# Regenerates recipes-nodus/nodus/nodus-crates.inc from the Cargo.lock files
# of the committed tree with OpenEmbedded-Core's own logic: the python that
# `bitbake -c update_crates nodus` runs, taken from the
# cargo-update-recipe-crates class of the OE-Core tree given (so no recipe
# build, and no python3-native, is needed).
#
#   yocto-layer/update-crates.sh OE_CORE_DIR [OUTPUT]
#
# OUTPUT defaults to the layer's nodus-crates.inc; the packaging test writes
# elsewhere and compares.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
oe=${1:?usage: $0 OE_CORE_DIR [OUTPUT]}
out=${2:-$here/recipes-nodus/nodus/nodus-crates.inc}
class=$oe/meta/classes-recipe/cargo-update-recipe-crates.bbclass
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
# What bitbake's ${S} would hold: the committed tree, nothing built.
git -C "$here/.." archive HEAD | tar -x -C "$src"
# The class's heredoc, with the variables bitbake would expand, then read by
# the shell as the class's unquoted heredoc is (`\\` becomes `\`).
{
  printf 'cat <<EOF\n'
  awk '/nativepython3 - <<EOF/{on=1; next} on && /^EOF$/{exit} on' "$class" \
    | sed -e "s|\${CARGO_LOCK_SRC_DIR}|$src|g" -e "s|\${TARGET_FILE}|$out|g" -e 's|\${PN}|nodus|g'
  printf 'EOF\n'
} > "$src/.heredoc.sh"
bash "$src/.heredoc.sh" > "$src/.update_crates.py"
python3 "$src/.update_crates.py"
# The absolute path of the temporary tree is not part of the result.
sed -i "s|$src/||g" "$out"
