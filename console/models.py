"""The console's own records: failed sign-ins, which throttle further attempts."""

from datetime import timedelta

from django.db import models
from django.utils import timezone


class LoginFailure(models.Model):
    """One failed sign-in. Too many for a username, or from an address, within WINDOW refuse further attempts
    (even with the right password) until the oldest of them is WINDOW old: guessing a password at the speed
    of a script becomes guessing a few passwords an hour."""

    WINDOW = timedelta(minutes=15)
    # Per username from anywhere (a guessed account), and per address for any username (one machine trying
    # many accounts). The address limit is higher: a classroom behind one NAT shares an address.
    MAX_PER_USERNAME = 10
    MAX_PER_ADDRESS = 50

    username = models.CharField(max_length=150, db_index=True)
    address = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self):
        return f"{self.username} from {self.address} at {self.at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def wait(cls, username: str, address: str | None, now=None) -> timedelta:
        """How long sign-ins for `username` or from `address` must wait; zero when they may go ahead."""
        now = now or timezone.now()
        recent = cls.objects.filter(at__gt=now - cls.WINDOW)
        waits = [timedelta(0)]
        for rows, limit in ((recent.filter(username=username), cls.MAX_PER_USERNAME),
                            (recent.filter(address=address), cls.MAX_PER_ADDRESS)):
            times = list(rows.order_by("-at").values_list("at", flat=True)[:limit])
            if len(times) >= limit:
                # Free again once the oldest of the last `limit` failures leaves the window.
                waits.append(times[-1] + cls.WINDOW - now)
        return max(waits)

    @classmethod
    def record(cls, username: str, address: str | None) -> None:
        cls.objects.filter(at__lt=timezone.now() - cls.WINDOW).delete()
        cls.objects.create(username=username[:150], address=address)

    @classmethod
    def forget(cls, username: str, address: str | None) -> None:
        """A successful sign-in clears its own username's failures from its own address."""
        cls.objects.filter(username=username, address=address).delete()
