# /etc/bash.bashrc of tfbox's local TensorFlow notebook image (scripts/tf-image.sh),
# in the spirit of the one in tensorflow/tensorflow:*-jupyter: the image's command
# sources it (`bash -c "source /etc/bash.bashrc && jupyter notebook ..."`), so it
# must not fail and must print nothing when not interactive.
case $- in
  *i*) ;;
  *) return 0 2>/dev/null || true ;;
esac

export PS1="\[\e[31m\]tf-docker\[\e[m\] \[\e[33m\]\w\[\e[m\] > "
export TERM=xterm-256color
alias grep="grep --color=auto"
alias ls="ls --color=auto"

echo -e "\e[1;31m"
cat <<'TF'
 _____                          _____ _
|_   _|__ _ __  ___  ___  _ __ |  ___| | _____      __
  | |/ _ \ '_ \/ __|/ _ \| '__|| |_  | |/ _ \ \ /\ / /
  | |  __/ | | \__ \ (_) | |   |  _| | | (_) \ V  V /
  |_|\___|_| |_|___/\___/|_|   |_|   |_|\___/ \_/\_/
TF
echo -e "\e[0;33m"
if [[ $EUID -eq 0 ]]; then
  cat <<'WARN'
WARNING: You are running this container as root, which can cause new files in
mounted volumes to be created as the root user on your host machine.

To avoid this, run the container by specifying your user's userid:

$ docker run -u $(id -u):$(id -g) args...
WARN
fi
echo -e "\e[m"
