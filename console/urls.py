from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from console import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", views.ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # The AWS-compatible API (batchjobs/api/), at /api/personalize; it authenticates with SigV4, not sessions.
    path("", include("batchjobs.api")),
    # The runtime API (GetRecommendations, GetPersonalizedRanking) at /api/personalize-runtime.
    path("", include("batchjobs.runtime")),
    # PutEvents (personalize-events) at /api/personalize-events.
    path("", include("batchjobs.events_api")),
    path("", include("batchjobs.urls")),
]

