"""What every page shares: the permission check, errors put onto forms, the generic pages."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import render

from tenancy.scope import scope_for


def scoped(capability: str | None = None):
    """A view for logged-in users with a role; `capability` names a Scope.may_* property the
    role must have (403 otherwise). The view finds its objects in `request.scope`'s querysets."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(request, *args, **kwargs):
            scope = scope_for(request.user)
            if scope.role is None or (capability and not getattr(scope, capability)):
                raise PermissionDenied
            request.scope = scope
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def add_errors(form, error: ValidationError) -> None:
    """Put an operation's errors onto the form's fields (or the form, for unknown fields)."""
    if hasattr(error, "error_dict"):
        for field, messages in error.message_dict.items():
            target = field if field in form.fields else None
            for message in messages:
                form.add_error(target, f"{field}: {message}" if target is None else message)
    else:
        for message in error.messages:
            form.add_error(None, message)


def form_page(request, form, *, title: str, submit: str = "Save", intro: str = "",
              extra: dict | None = None):  # fmt: skip
    return render(
        request,
        "web/form.html",
        {"form": form, "title": title, "submit": submit, "intro": intro, **(extra or {})},
    )


def confirm_page(request, *, title: str, question: str):
    return render(request, "web/confirm.html", {"title": title, "question": question})
