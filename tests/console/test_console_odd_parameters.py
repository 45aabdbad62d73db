"""Query parameters no page expects still get a page, never a 500."""

import pytest
from django.urls import reverse


@pytest.mark.parametrize("ids", ["99999999999999999999999", "²", "1,-2,x,,3", "9" * 5000])
@pytest.mark.parametrize("page", ["job_list_status", "segment_job_list_status"])
def test_a_list_poll_ignores_ids_that_are_not_ids(signed_in, group, page, ids):
    response = signed_in.get(reverse(f"batchjobs:{page}", args=[group.pk]), {"ids": ids})
    assert response.status_code == 200
    assert response.json() == {"jobs": []}


@pytest.mark.parametrize("source", ["²", "99999999999999999999999"])
def test_create_from_an_odd_job_id_is_not_found(signed_in, group, source):
    response = signed_in.get(reverse("batchjobs:job_create", args=[group.pk]), {"from": source})
    assert response.status_code == 404
