# Shared by bin/run and bin/test: find Python 3.11+, create .venv, install a
# requirements file when it changed since the last install.
find_python() {
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "OpsPortal needs Python 3.11 or newer on the PATH." >&2
  return 1
}

ensure_env() {
  local requirements="$1" python stamp wanted
  if [ ! -x .venv/bin/python ]; then
    python=$(find_python)
    echo "Creating the virtual environment in .venv with $python"
    "$python" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
  fi
  stamp=".venv/.installed-$(basename "$requirements")"
  wanted=$(cat "$requirements" requirements*.txt | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "Installing $requirements (first run takes a few minutes)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" > "$stamp"
  fi
}
