"""Figure 7a measures Record as a Record environment runs it: in a process that runs nothing else."""

from bench import record_throughput


def test_record_on_fakes_is_measured_in_its_own_process() -> None:
    # When figure 7a runs (quick: a fifth of the batches)
    figure = record_throughput.run_fakes(quick=True)
    # Then it ran in a child process, both batch sizes counted every impression and the handler logged no error
    assert figure["measured_in"] == "a child process of its own"
    assert set(figure["sizes"]) == {"10", "100"}
    for size in figure["sizes"].values():
        assert size["handler_errors"]["count"] == 0
        assert size["full_handler"]["us_per_event_p50"] > 0
        # and its own CPU per event (the thread's clock) next to the wall time: never more, as it is part of it
        for path in ("domain_process_batch", "full_handler"):
            timed = size[path]
            assert 0 < timed["cpu_us_per_event_min"] <= timed["cpu_us_per_event_p50"]
            assert timed["cpu"]["min_ms"] <= timed["max_ms"]
    assert figure["impressions_counted"] > 0
