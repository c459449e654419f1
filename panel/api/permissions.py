"""API permission: an admin (operator, reseller admin, domain admin) with the capability the
route needs; the objects come from the same Scope querysets as the web pages'."""

from rest_framework.permissions import BasePermission

from tenancy.scope import scope_for


class IsAdmin(BasePermission):
    """Authenticated admin; the view's `capability` (a Scope.may_* name) must hold for writes,
    `read_capability` for reads."""

    def has_permission(self, request, view) -> bool:
        scope = scope_for(request.user)
        request.scope = scope
        if not scope.is_admin:
            return False
        name = getattr(view, "read_capability" if request.method in ("GET", "HEAD", "OPTIONS")
                       else "capability", None)  # fmt: skip
        if isinstance(name, dict):
            name = name.get(view.action)
        return name is None or bool(getattr(scope, name))
