"""What Golem can run: the refusals of a spec that its VMs and deploy step cannot honour."""

from __future__ import annotations

from providers.types import Refusal, WorkloadSpec

GVMKIT_ADVICE = (
    "Golem runs GVMI images from the Golem registry, not Docker images: convert and push it "
    "with gvmkit-build (`gvmkit-build <docker image> --push-to <user>/<repo>:<tag>`, or "
    "`--push --nologin` for a hash), then submit that tag or sha3:<hash>."
)


def refusals(spec: WorkloadSpec, generic: list[Refusal]) -> list[Refusal]:
    """`generic` is the contract's own check; Golem allows ports (unexposed) but refuses more."""
    refusals = [r for r in generic if r.field != "ports"]
    if any(port.expose for port in spec.ports):
        refusals.append(
            Refusal(
                "ports",
                "Golem providers accept no inbound connections, so ports cannot be exposed",
            )
        )
    if not spec.command:
        refusals.append(
            Refusal(
                "command",
                "Golem VMs ignore the image's entrypoint and CMD: give the command to run",
            )
        )
    elif not spec.command[0].startswith("/"):
        refusals.append(
            Refusal(
                "command",
                "Golem runs command[0] as an absolute path inside the image "
                "(e.g. /bin/sh), not through a PATH lookup",
            )
        )
    for volume in spec.volumes:
        if volume.read_only:
            refusals.append(
                Refusal("volumes", f"{volume.name}: Golem's deploy cannot mount read-only")
            )
        if volume.size_bytes is None:
            refusals.append(
                Refusal("volumes", f"{volume.name}: Golem's deploy needs a size per volume")
            )
    return refusals
