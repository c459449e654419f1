"""Log in (admins with their user name, mailbox users with their address) and out."""

from django.contrib.auth import authenticate, login, logout
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from tenancy.middleware import user_fits_brand
from web.forms import LoginForm

REFUSED = "That user name or address and password do not match an account here."


def login_view(request):
    if request.user.is_authenticated:
        return redirect("web:home")
    form = LoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = authenticate(
            request,
            username=form.cleaned_data["username"].strip(),
            password=form.cleaned_data["password"],
        )
        if user is not None and user_fits_brand(user, request.brand):
            login(request, user)
            return redirect("web:home")
        form.add_error(None, REFUSED)
    return render(request, "web/login.html", {"form": form})


@require_POST
def logout_view(request):
    logout(request)
    return redirect("web:login")
