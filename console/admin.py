"""Failed sign-ins, for an operator checking why a user or an address is held back."""

from django.contrib import admin

from console.models import LoginFailure


@admin.register(LoginFailure)
class LoginFailureAdmin(admin.ModelAdmin):
    list_display = ("username", "address", "at")
    search_fields = ("username", "address")
    date_hierarchy = "at"
    # The record of what happened; deleting rows is how an operator lifts a hold early.
    readonly_fields = ("username", "address", "at")

    def has_add_permission(self, request):
        return False
