"""The lean clients' retry quota (botocore's standard mode): retries spend tokens, success earns them back."""

from adserve.dal.aws_http import RetryQuota


def test_retries_stop_when_the_quota_is_spent_and_resume_as_calls_succeed() -> None:
    quota = RetryQuota()
    retries = 0
    while quota.acquire(RetryQuota.RETRY_COST):
        retries += 1
    assert retries == RetryQuota.CAPACITY // RetryQuota.RETRY_COST
    assert not quota.acquire(RetryQuota.RETRY_COST)
    for _ in range(RetryQuota.RETRY_COST):  # five calls that succeeded at once earn one retry
        quota.release(0)
    assert quota.acquire(RetryQuota.RETRY_COST)
    assert not quota.acquire(RetryQuota.RETRY_COST)


def test_a_retried_call_that_succeeds_gives_its_cost_back_and_the_quota_never_overflows() -> None:
    quota = RetryQuota()
    assert quota.acquire(RetryQuota.TIMEOUT_COST)
    quota.release(RetryQuota.TIMEOUT_COST)
    quota.release(0)
    retries = 0
    while quota.acquire(RetryQuota.TIMEOUT_COST):
        retries += 1
    assert retries == RetryQuota.CAPACITY // RetryQuota.TIMEOUT_COST
