#!/bin/sh
# shim/console/embed.sh: writes on stdout the C file (console_files.c) that compiles the
# console's page into the shim: each FILE given as its name, content type and bytes.
#   sh console/embed.sh console/index.html console/console.css ... >console_files.c
# A file whose type is not known here stops the build: add its type below.
set -eu

echo '/* console_files.c: made by shim/console/embed.sh from shim/console/; do not edit. */'
echo '#include "shim.h"'
n=0
for f in "$@"; do
    case $f in
        *.html) type='text/html; charset=utf-8' ;;
        *.css) type='text/css; charset=utf-8' ;;
        *.js) type='text/javascript; charset=utf-8' ;;
        *.svg) type='image/svg+xml' ;;
        *.png) type='image/png' ;;
        *.ico) type='image/x-icon' ;;
        *) echo "embed.sh: $f: unknown type (not .html, .css, .js, .svg, .png, .ico)" >&2; exit 1 ;;
    esac
    printf 'static const unsigned char file%d[] = {\n' "$n"
    # one byte more at the end (0): an empty file still makes an array
    { od -An -v -tx1 "$f"; echo 00; } | tr -s ' \n' '\n\n' | grep -v '^$' \
        | awk '{ printf "%s0x%s,", (NR % 16 == 1 ? (NR > 1 ? "\n\t" : "\t") : " "), $1 }'
    printf '\n};\n'
    eval "name$n=\$(basename \"\$f\")" "type$n=\$type"
    n=$((n + 1))
done
echo 'const ConsoleFile console_files[] = {'
i=0
while [ "$i" -lt "$n" ]; do
    eval "name=\$name$i type=\$type$i"
    printf '\t{"%s", "%s", file%d, sizeof(file%d) - 1},\n' "$name" "$type" "$i" "$i"
    i=$((i + 1))
done
printf '\t{NULL, NULL, NULL, 0},\n};\n'
