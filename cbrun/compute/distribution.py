"""The `distribution` section: which `tf.distribute` strategy trains one run, on which devices."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.core.fields import StrictModel

STRATEGIES = ("default", "one_device", "mirrored")

MULTI_WORKER = (
    "`multi_worker_mirrored` is not supported: Keras 3 does not support "
    "tf.distribute.MultiWorkerMirroredStrategy (keras-team/keras issue 20585). Use `mirrored` "
    "to train on all devices of one machine, or `cbrun sweep --backend ray` to spread many runs "
    "over a cluster (README: Scaling out)"
)


class DistributionSection(StrictModel):
    """How one training run is spread over the devices of this machine.

    The model and optimizer are built inside the strategy's scope; `training.batch_size` is the
    global batch, split evenly across the replicas.
    """

    strategy: str = Field(
        "default",
        description="`default` (TensorFlow places ops), `one_device` (pin to `device`) or "
        "`mirrored` (synchronous data parallelism over `devices`, all GPUs, or `cpu_devices`).",
        examples=["mirrored"],
    )
    device: str | None = Field(
        None,
        description="For `one_device`: a device such as `/gpu:0` or `/cpu:0` "
        "(default: the first GPU, else the CPU).",
    )
    devices: list[str] | None = Field(
        None,
        min_length=1,
        description="For `mirrored`: the devices to mirror over "
        "(default: every GPU, else the CPU).",
    )
    cpu_devices: int | None = Field(
        None,
        ge=2,
        description="For `mirrored` without GPUs: split the CPU into this many logical devices "
        "and mirror over them (for testing data parallelism on a laptop or CI).",
    )

    @field_validator("strategy", mode="before")
    @classmethod
    def _known_strategy(cls, value: Any) -> Any:
        if value == "multi_worker_mirrored":
            raise ValueError(MULTI_WORKER)
        if isinstance(value, str) and value not in STRATEGIES:
            raise ValueError(
                f"unknown strategy `{value}`.{did_you_mean(value, STRATEGIES)} "
                f"Choose one of: {', '.join(STRATEGIES)}"
            )
        return value

    @model_validator(mode="after")
    def _options_match_strategy(self) -> DistributionSection:
        if self.device is not None and self.strategy != "one_device":
            raise ValueError("`device` applies only to strategy `one_device`")
        for name in ("devices", "cpu_devices"):
            if getattr(self, name) is not None and self.strategy != "mirrored":
                raise ValueError(f"`{name}` applies only to strategy `mirrored`")
        if self.devices is not None and self.cpu_devices is not None:
            raise ValueError("give either `devices` or `cpu_devices`, not both")
        return self


def make_strategy(section: DistributionSection) -> Any:
    """Create the devices and the strategy; call before TensorFlow runs any op in this process."""
    import tensorflow as tf

    if section.cpu_devices:
        _split_cpu(tf, section.cpu_devices)
    if section.strategy == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        device = section.device or ("/gpu:0" if gpus else "/cpu:0")
        return tf.distribute.OneDeviceStrategy(_existing(tf, device, "device"))
    if section.strategy == "mirrored":
        if section.cpu_devices:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        elif section.devices:
            devices = [_existing(tf, d, "devices") for d in section.devices]
        else:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in gpus] or ["/cpu:0"]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def describe(section: DistributionSection, strategy: Any) -> dict[str, Any]:
    """What run.json records: the strategy, its replica count and devices."""
    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy leaves placement to TensorFlow
        devices = []
    return {
        "strategy": section.strategy,
        "tf_strategy": type(strategy).__name__,
        "replicas": int(strategy.num_replicas_in_sync),
        "devices": devices,
    }


def _split_cpu(tf: Any, count: int) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError:
        existing = len(tf.config.list_logical_devices("CPU"))
        if existing != count:
            raise CbrunError(
                f"distribution.cpu_devices: TensorFlow already started in this process with "
                f"{existing} CPU device(s); logical devices can be set only once per process. "
                "Run cbrun in a fresh process."
            ) from None


def _existing(tf: Any, name: str, key: str) -> str:
    """`name` if this machine has that device, else a CbrunError listing the devices it has."""
    try:
        wanted = tf.DeviceSpec.from_string(name)
    except ValueError:
        raise CbrunError(f"distribution.{key}: `{name}` is not a device name like /gpu:0") from None
    available = tf.config.list_logical_devices()
    for device in available:
        spec = tf.DeviceSpec.from_string(device.name)
        if (spec.device_type or "").upper() == (wanted.device_type or "").upper() and (
            spec.device_index == (wanted.device_index or 0)
        ):
            return device.name
    names = ", ".join(d.name for d in available)
    raise CbrunError(f"distribution.{key}: no device `{name}` on this machine; it has: {names}")
