"""The data collection pipeline: media in, clean Telugu clips and conversational pairs out (``s2s-bench data
collect``).

Modelled on lhotse's manifests and NeMo's speech data processor: small named stages (``stages.STAGES``), each a pure
function of manifests in and a manifest out, rerunnable one at a time, every line keeping its provenance. See
docs/data.md ("Collecting data from media") for the stages, the outputs and the measured figures.
"""
