"""The panel's WSGI application, for the application server on the web nodes (gunicorn or
Apache's mod_wsgi behind the reverse proxy), configured by /etc/mailstack/panel.env."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailpanel.settings")
application = get_wsgi_application()
