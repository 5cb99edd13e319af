from harness.events import EventLog, read_events


def test_a_line_cut_short_by_a_kill_is_ignored_and_the_log_continues_cleanly(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventLog(path) as log:
        log.emit({"e": "utt_end", "u": "a"})
    with open(path, "a") as fh:
        fh.write('{"e": "out", "u": "b", "n"')  # the process died mid-write
    assert [e["u"] for e in read_events(path)] == ["a"]
    with EventLog(path) as log:  # a resumed run appends
        log.emit({"e": "utt_end", "u": "c"})
    assert [e["u"] for e in read_events(path)] == ["a", "c"]


def test_events_reach_the_disk_without_close(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path, flush_s=0.01)
    log.emit({"e": "push", "n": 1})
    log.flush()
    assert read_events(path) == [{"e": "push", "n": 1}]
    log.close()
