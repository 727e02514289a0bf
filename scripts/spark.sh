#!/usr/bin/env bash
# Java for `distillguard hunt --engine spark` (PySpark 4 needs Java 17 or newer).
#
#   scripts/spark.sh install     # install Debian's openjdk-17-jre-headless if no Java 17+ (make test runs this)
#   scripts/spark.sh check       # say what `--engine spark` still lacks here, exit 1 if anything
#
# PySpark itself is the `spark` extra: pip install -e '.[spark]' (make test installs it).
set -euo pipefail

java_major() {
    local java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
    command -v "$java" >/dev/null || { echo 0; return; }
    "$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1
}

install_java() {
    [ "$(java_major)" -ge 17 ] && return 0
    echo "Java 17+ not found; installing Debian's openjdk-17-jre-headless" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openjdk-17-jre-headless >/dev/null
}

case "${1:-}" in
install)
    install_java
    ;;
check)
    ok=0
    if [ "$(java_major)" -ge 17 ]; then echo "java: $(java_major)"; else echo "java: missing (scripts/spark.sh install)"; ok=1; fi
    py="${PYTHON:-.venv/bin/python}"
    if "$py" -c "import pyspark" 2>/dev/null; then echo "pyspark: $("$py" -c 'import pyspark; print(pyspark.__version__)')"
    else echo "pyspark: missing (pip install -e '.[spark]')"; ok=1; fi
    exit $ok
    ;;
*)
    echo "usage: $0 install|check" >&2
    exit 2
    ;;
esac
