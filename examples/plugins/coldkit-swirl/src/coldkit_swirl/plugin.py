"""The plugin module named in ``[project.entry-points.coldkit]``: one hook per kind it adds.

Every component is registered **by path** (plugin API 3) with its name, description and
parameter model, so listing and validating never import torch; coldkit imports the component's
module the first time a run builds it. ``COLDKIT_PLUGIN_API = 4``: the sampler takes the API 4
keywords and the degradation declares ``random_params``.
"""

from __future__ import annotations

from coldkit import hookimpl
from coldkit_swirl.params import SwirlCNNParams, SwirlParams, SwirlPriorParams, StripesParams

COLDKIT_PLUGIN_API = 4


@hookimpl
def register_degradations(register) -> None:
    register("coldkit_swirl.degradation:Swirl", name="swirl",
             description="twist about the centre, the angle growing with t (grid_sample)",
             params=SwirlParams)


@hookimpl
def register_restorers(register) -> None:
    register("coldkit_swirl.restorer:SwirlCNN", name="swirl-cnn",
             description="small time-conditioned conv net (dilated residual blocks, FiLM)",
             params=SwirlCNNParams)


@hookimpl
def register_samplers(register) -> None:
    # A sampler takes no parameters: its name (and description) only.
    register("coldkit_swirl.sampler:stride_2", name="stride-2",
             description="Algorithm 2 two levels at a time: x_{s-2} = x_s - D(x̂0, s) + D(x̂0, s-2)")


@hookimpl
def register_priors(register) -> None:
    register("coldkit_swirl.prior:SwirlPrior", name="swirl-pca",
             description="PCA mixture over swirled images, with the swirl's own centre draw",
             params=SwirlPriorParams)


@hookimpl
def register_datasets(register) -> None:
    register("coldkit_swirl.dataset:Stripes", name="stripes",
             description="seeded coloured stripes at random angles (no download)",
             params=StripesParams)
