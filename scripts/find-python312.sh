#!/usr/bin/env bash
# Print the path of a Python 3.12+ interpreter (needed by Django 6.x), or nothing.
for candidate in python3.13 python3.12 python3.14; do
  if path=$(command -v "$candidate" 2>/dev/null) && "$path" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    echo "$path"; exit 0
  fi
done
# pyenv keeps versions here; its shims refuse a version that is not selected.
for path in "$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3; do
  if [ -x "$path" ] && "$path" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    echo "$path"; exit 0
  fi
done
exit 0
