"""API authentication: `Authorization: Bearer <token>`, one token per admin user (DRF's
authtoken table; an operator or reseller admin issues them with `mailstack-panel apitoken`)."""

from rest_framework.authentication import TokenAuthentication


class BearerTokenAuthentication(TokenAuthentication):
    keyword = "Bearer"
