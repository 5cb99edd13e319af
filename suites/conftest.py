"""Options of the quality and intelligibility suites (the latency options come from harness.pytest_plugin)."""


def pytest_addoption(parser):
    group = parser.getgroup("s2s-bench")
    group.addoption(
        "--asr-judge",
        default=None,
        metavar="SPEC",
        help="ASR judge for WER/CER/chrF, e.g. whisper:path=/models/whisper-small (default: none, n/a)",
    )
    group.addoption(
        "--s2s-target",
        default="input",
        choices=("input", "response"),
        help="score outputs against the input utterance (default) or the data's reference response",
    )
    group.addoption(
        "--s2s-score-workers", type=int, default=2, metavar="N", help="processes for scoring (default 2)"
    )
    group.addoption(
        "--s2s-codec",
        default=None,
        metavar="PATH",
        help="codec suite: the codec checkpoint folder to measure against Opus/Codec2 (default: suite skipped)",
    )
