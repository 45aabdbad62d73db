"""Gunicorn's settings for the console's web server, as `make run` starts it (the address comes on the
command line)."""

from batchjobs.processes import die_with_parent

wsgi_app = "console.wsgi:application"
worker_class = "gthread"
workers = 2
threads = 4
# Requests are short; a stop should not wait half a minute for a slow client.
graceful_timeout = 5
# Gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl), so two stacks on
# one machine would take it over from each other; nothing here uses it.
control_socket_disable = True
accesslog = "-"


def post_fork(server, worker):
    # A web worker whose master died (killed, or stopped uncleanly) would keep the port; it goes with it.
    die_with_parent(server.pid)
