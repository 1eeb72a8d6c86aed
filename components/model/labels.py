"""Every label name tfbox puts on what it creates: the program, `make doctor`/`status`, the ledger and the
policy pack read the same names from here, so one cannot drift from the others."""

from __future__ import annotations

PROJECT_LABEL = "tfbox.project"
STACK_LABEL = "tfbox.stack"
ROLE_LABEL = "tfbox.role"  # notebook, tensorboard, ready, gpu-check, storage, network; notebooks/logs on volumes
SEAT_LABEL = "tfbox.seat"  # on a seat's parts (tfbox:seats): the seat's name
SHARE_LABEL = "tfbox.share-gpus"  # on seat notebooks: "true" when the seat opted in to sharing its GPUs
RETAIN_LABEL = "tfbox.retain-on-delete"  # on volumes: "true" when `destroy` keeps them (tfbox:keepVolumes)
TENSORBOARD_PUBLIC_LABEL = "tfbox.tensorboard-public"  # tfbox:tensorboardPublic, where the policy pack can see it
PLAIN_HTTP_LABEL = "tfbox.plain-http-on-lan"  # set when tfbox:allowPlainHttpOnLan is true: the opt-in, for the policy pack
TENSORBOARD_PROXY_LABEL = "tfbox.tensorboard-proxy"  # "true" on a notebook serving /tensorboard/ (components.kernel.tensorboard_proxy)
GPU_CHECK_LABEL = "tfbox.gpu-check"  # on a notebook: the GPU check's verdict it waited for
