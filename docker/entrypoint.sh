#!/bin/sh
# Runs the notification server as the unprivileged `node` user. Started as root (the image's
# default), it first creates the log file named by -l and gives it to `node`: Seafile's compose
# set-up mounts a logs directory that belongs to root, shared with the other Seafile containers.
set -eu

case "${1:-}" in
  -*) set -- notification-server "$@" ;;
esac
case "${1:-}" in
  notification-server | */notification-server) ;;
  *) exec "$@" ;;
esac
if [ "$(id -u)" != 0 ]; then
  exec "$@"
fi

log_file=
previous=
for arg in "$@"; do
  case "$previous" in
    -l | --log-file) log_file=$arg ;;
  esac
  case "$arg" in
    --log-file=*) log_file=${arg#--log-file=} ;;
  esac
  previous=$arg
done
case "${SEAFILE_LOG_TO_STDOUT:-}" in
  true | 1 | yes | TRUE | True) log_file= ;;
esac
if [ -n "$log_file" ] && [ "$log_file" != - ]; then
  mkdir -p "$(dirname "$log_file")"
  touch "$log_file"
  chown node:node "$log_file"
  if ! setpriv --reuid=node --regid=node --init-groups -- test -w "$log_file"; then
    echo "notification-server: the node user (uid $(id -u node)) cannot write $log_file: let others enter its directory (chmod o+x), or set SEAFILE_LOG_TO_STDOUT=true" >&2
    exit 1
  fi
fi
exec setpriv --reuid=node --regid=node --init-groups -- "$@"
