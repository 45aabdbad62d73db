"""The site shell: login, navigation, breadcrumbs, home."""

import pytest
from django.urls import reverse

from tests import factories


def _all_page_urls():
    group = factories.make_group("shell-group")
    role = factories.make_role("shell-role")
    solution = factories.make_solution(group, "shell-sol")
    version = factories.make_version(solution)
    job = factories.make_job(version, role, "shell-job")
    dataset = factories.make_dataset(group)
    from batchjobs.models import DatasetImportJob

    import_job = DatasetImportJob.objects.create(job_name="shell-import", dataset=dataset, data_location="s3://b1/x")
    g = group.pk
    return [
        reverse("home"),
        reverse("batchjobs:dataset_group_list"),
        reverse("batchjobs:dataset_group_create"),
        reverse("batchjobs:dataset_group_overview", args=[g]),
        reverse("batchjobs:datasets", args=[g]),
        reverse("batchjobs:dataset_create", args=[g]),
        reverse("batchjobs:import_job_create", args=[g]),
        reverse("batchjobs:import_job_detail", args=[g, import_job.pk]),
        reverse("batchjobs:import_job_status", args=[g, import_job.pk]),
        reverse("batchjobs:solutions", args=[g]),
        reverse("batchjobs:recipes", args=[g]),
        reverse("batchjobs:solution_create", args=[g]),
        reverse("batchjobs:solution_detail", args=[g, solution.pk]),
        reverse("batchjobs:solution_version_detail", args=[g, version.pk]),
        reverse("batchjobs:solution_version_status", args=[g, version.pk]),
        reverse("batchjobs:job_list", args=[g]),
        reverse("batchjobs:job_create", args=[g]),
        reverse("batchjobs:job_detail", args=[g, job.pk]),
        reverse("batchjobs:job_status", args=[g, job.pk]),
        reverse("batchjobs:job_download", args=[g, job.pk, 0]),
        reverse("batchjobs:role_list"),
        reverse("batchjobs:role_create"),
        reverse("batchjobs:role_detail", args=[role.pk]),
        reverse("batchjobs:credentials"),
    ]


@pytest.mark.django_db
def test_it_redirects_anonymous_visitors_to_login_on_every_page(client):
    for url in _all_page_urls():
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


@pytest.mark.django_db
def test_it_requires_login_for_mutations(client, group):
    urls = [
        reverse("batchjobs:access_key_create"),
        reverse("batchjobs:job_create", args=[group.pk]),
        reverse("batchjobs:role_create"),
    ]
    for url in urls:
        response = client.post(url, {})
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_it_serves_every_page_to_a_signed_in_user(signed_in):
    for url in _all_page_urls():
        if "download" in url:
            continue
        response = signed_in.get(url, follow=True)
        assert response.status_code == 200, url


@pytest.mark.django_db
def test_it_shows_the_login_page(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b"Sign in to Personalize Console" in response.content


@pytest.mark.django_db
def test_it_signs_in_with_the_login_form(client, console_user):
    response = client.post(reverse("login"), {"username": "carol", "password": "correct horse battery"})
    assert response.status_code == 302
    assert response["Location"] == reverse("home")


@pytest.mark.django_db
def test_it_rejects_a_wrong_password(client, console_user):
    response = client.post(reverse("login"), {"username": "carol", "password": "wrong"})
    assert response.status_code == 200
    assert b"didn't match" in response.content


@pytest.mark.django_db
def test_it_signs_out_with_a_post(signed_in):
    response = signed_in.post(reverse("logout"))
    assert response.status_code == 302
    assert signed_in.get(reverse("batchjobs:role_list")).status_code == 302


@pytest.mark.django_db
def test_it_redirects_home_to_dataset_groups(signed_in):
    response = signed_in.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("batchjobs:dataset_group_list")


@pytest.mark.django_db
def test_it_shows_the_group_pages_in_the_navigation_inside_a_group(signed_in, group):
    html = signed_in.get(reverse("batchjobs:dataset_group_overview", args=[group.pk])).content.decode()
    nav = html[html.index('<nav class="sidenav"'):html.index("</nav>", html.index('<nav class="sidenav"'))]
    for text in ("Dataset groups", group.name, "Overview", "Datasets", "Filters", "Custom resources",
                 "Solutions and recipes", "Batch inference jobs", "Batch segment jobs", "Roles",
                 "Security credentials"):
        assert text in nav
    # In the real console's order: Filters under the group after Datasets, segment jobs after inference jobs.
    assert nav.index(">Datasets<") < nav.index(">Filters<") < nav.index("Custom resources")
    assert nav.index(">Batch inference jobs<") < nav.index(">Batch segment jobs<")
    # Campaigns in the real console's place, between solutions and batch inference jobs; pages the clone
    # does not have stay out of the navigation.
    assert nav.index(">Solutions and recipes<") < nav.index(">Campaigns<") < nav.index(">Batch inference jobs<")
    assert "Recommenders" not in nav


@pytest.mark.django_db
def test_it_leaves_group_pages_out_of_the_navigation_outside_a_group(signed_in, group):
    html = signed_in.get(reverse("batchjobs:dataset_group_list")).content.decode()
    assert reverse("batchjobs:datasets", args=[group.pk]) not in html
    assert 'aria-current="page">Dataset groups' in html


@pytest.mark.django_db
def test_it_links_the_admin_for_staff_only(client, console_user, django_user_model):
    client.force_login(console_user)
    assert reverse("admin:index") not in client.get(reverse("batchjobs:role_list")).content.decode()
    staff = django_user_model.objects.create_user("sam", password="x", is_staff=True)
    client.force_login(staff)
    assert reverse("admin:index") in client.get(reverse("batchjobs:role_list")).content.decode()


@pytest.mark.django_db
def test_it_has_a_logout_form_with_csrf(signed_in):
    html = signed_in.get(reverse("batchjobs:role_list")).content.decode()
    form = html[html.index(f'action="{reverse("logout")}"'):]
    assert 'name="csrfmiddlewaretoken"' in form[:400]


@pytest.mark.django_db
def test_it_shows_breadcrumbs(signed_in, group):
    html = signed_in.get(reverse("batchjobs:job_create", args=[group.pk])).content.decode()
    crumbs = html[html.index('class="breadcrumbs"'):]
    assert crumbs.index("Dataset groups") < crumbs.index(group.name) < crumbs.index("Batch inference jobs")


@pytest.mark.django_db
def test_it_answers_health_checks_without_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"OK"
