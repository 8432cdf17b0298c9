#!/bin/sh
# Inside a VM of the Vagrant test bed (or on any docker host running
# daustd): build the daust image and start a few containers that phone home
# to this machine's daemon. Source it (`. start.sh`) or run it.
#
#   start.sh [COUNT]      (default 3)
src=${DAUST_SRC:-/vagrant}
count=${1:-3}
sudo docker build -q -f "$src/Containerfile" -t daust "$src" >/dev/null || return 1 2>/dev/null || exit 1
i=1
while [ "$i" -le "$count" ]; do
  name="$(hostname)-ct$i"
  sudo docker rm -f "$name" >/dev/null 2>&1
  sudo docker run -d --name "$name" --hostname "$name" daust >/dev/null
  i=$((i + 1))
done
sleep 1
daust list
