"""Campaign pages: the list in the navigation pane, the create form, and the detail page's test panel, which
shows what GetRecommendations answers (titles and scores) beside the equivalent runtime calls."""

import re

from django.urls import reverse

from batchjobs.models import Campaign
from tests import factories


def test_create_a_campaign_and_test_it(client, django_user_model, demo_world, trained_version):
    client.force_login(factories.grant_write(django_user_model.objects.create_user("carol", password="x-y-z-w")))
    group = demo_world["group"]
    version = trained_version("aws-user-personalization")
    page = client.get(reverse("batchjobs:campaign_list", args=[group.pk]))
    assert page.status_code == 200 and b"No campaigns yet" in page.content
    assert b'aria-current="page">Campaigns</a>' in page.content

    form = client.get(reverse("batchjobs:campaign_create", args=[group.pk]))
    assert version.arn.encode() in form.content and b"aws personalize create-campaign" in form.content
    response = client.post(reverse("batchjobs:campaign_create", args=[group.pk]), {
        "name": "web-campaign", "solution_version": version.arn, "min_provisioned_tps": "1",
        "exploration_weight": "0.3", "exploration_item_age_cut_off": "30",
    })
    campaign = Campaign.objects.get(name="web-campaign")
    assert response.status_code == 302 and campaign.status == "ACTIVE"
    assert campaign.exploration_config == {"explorationWeight": "0.3", "explorationItemAgeCutOff": "30"}

    detail_url = reverse("batchjobs:campaign_detail", args=[group.pk, campaign.pk])
    detail = client.get(detail_url)
    assert b"Test campaign results" in detail.content and b"Status history" in detail.content
    user = demo_world["data"].user_ids[0]
    tested = client.get(detail_url, {"run": "1", "user_id": user})
    row = rb'<tr><td>(\d+)</td><td class="mono">([^<]+)</td><td>([^<]*)</td><td class="mono">([^<]+)</td>'
    rows = re.findall(row, tested.content)
    assert len(rows) == 25 and all(b"title" in title for _, _, title, _ in rows)
    assert b"aws personalize-runtime get-recommendations" in tested.content
    assert b"runtime.get_recommendations(" in tested.content
    assert b"Enter a user ID." in client.get(detail_url, {"run": "1", "user_id": ""}).content

    # A name taken already is the service's error, beside the field.
    again = client.post(reverse("batchjobs:campaign_create", args=[group.pk]), {
        "name": "web-campaign", "solution_version": version.arn, "min_provisioned_tps": "1",
    })
    assert again.status_code == 200 and b"already exists" in again.content


def test_a_viewer_sees_campaigns_but_cannot_create_one(client, viewer, group):
    client.force_login(viewer)
    assert client.get(reverse("batchjobs:campaign_list", args=[group.pk])).status_code == 200
    assert client.get(reverse("batchjobs:campaign_create", args=[group.pk])).status_code == 403
