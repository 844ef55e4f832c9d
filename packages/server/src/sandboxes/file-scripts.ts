/** The sandbox's own shell writes and reads its files (the path in $CAIRN_PATH), with its privileges. */
export const WRITE_FILE_SCRIPT = 'd=$(dirname "$CAIRN_PATH") && mkdir -p "$d" && t="$d/.cairn-tmp-$$" && cat > "$t" && mv -f "$t" "$CAIRN_PATH"';
export const READ_FILE_SCRIPT = 'if [ -d "$CAIRN_PATH" ]; then echo "is a directory" >&2; exit 21; fi; [ -f "$CAIRN_PATH" ] || { echo "no such file" >&2; exit 2; }; exec cat -- "$CAIRN_PATH"';
