"""Held mailboxes (sending holds, accounts.holds): what the policy service saw, and release."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render

from accounts import operations
from web.views.common import confirm_page, scoped


@scoped("may_manage_mail")
def hold_list(request):
    holds = request.scope.sending_holds().order_by("-held_at")
    return render(request, "web/holds.html", {"holds": holds})


@scoped("may_manage_mail")
def hold_release(request, pk: int):
    hold = get_object_or_404(request.scope.sending_holds(), pk=pk)
    address = hold.mailbox.address
    if request.method == "POST":
        operations.delete(request.scope.actor, hold)
        messages.success(request, f"Released {address}: it may send again.")
        return redirect("web:hold-list")
    return confirm_page(
        request,
        title=f"Release {address}",
        question=f"Let {address} send again? Make sure its password was changed first.",
    )
