"""manage.py admin add|list|remove|token: the panel's admin users and their API tokens.

The first operator is made here; later admins can be made in the panel too.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from rest_framework.authtoken.models import Token

from accounts.addresses import parse_target
from accounts.management import base
from accounts.management.base import AccountCommand, field_error, read_password
from tenancy.models import Profile, Role


class Command(AccountCommand):
    help = "Add, list and remove panel admins (operators, reseller admins, domain admins)."

    def add_actions(self, actions) -> None:
        add = actions.add_parser("add", help="add an admin; the password comes on stdin")
        add.add_argument("username")
        add.add_argument("--role", choices=["operator", "reseller", "domain"], required=True)
        add.add_argument("--reseller", help="the reseller a reseller or domain admin works for")
        add.add_argument("--domain", action="append", default=[], help="a domain admin's domain")
        add.add_argument(
            "--email", default="", help="where the admin is told of sending holds (optional)"
        )
        actions.add_parser("list", help="list admins")
        remove = actions.add_parser("remove", help="remove an admin")
        remove.add_argument("username")
        token = actions.add_parser("token", help="issue a new API token (printed once)")
        token.add_argument("username")

    def _profile(self, username: str) -> Profile:
        profile = Profile.objects.filter(user__username=username, role__in=["operator",
                                         "reseller", "domain"]).first()  # fmt: skip
        if profile is None:
            raise field_error("username", f"{username} is not an admin")
        return profile

    def do_add(
        self, username: str, role: str, reseller: str | None, domain: list[str], email: str, **_
    ):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            raise field_error("username", f"{username} already exists")
        if (role == "operator") != (reseller is None):
            raise field_error("reseller", "reseller and domain admins need one, operators none")
        owner = base.reseller(reseller) if reseller else None
        domains = [base.domain(d) for d in domain]
        foreign = [d.name for d in domains if owner is None or d.reseller_id != owner.pk]
        if foreign or (domains and role != "domain"):
            raise field_error("domain", f"not a domain of this domain admin's reseller: {foreign}")
        password = read_password(self.stdin)
        if email:
            try:
                email = parse_target(email)
            except ValidationError as error:
                raise field_error("email", error) from None
        user = User(username=username, email=email)
        try:
            validate_password(password, user)
        except ValidationError as error:
            raise field_error("password", error) from None
        user.set_password(password)
        user.save()
        profile = Profile.objects.create(user=user, role=role, reseller=owner)
        profile.domains.set(domains)
        self.stdout.write(f"added {Role(role).label} {username}")

    def do_list(self, **_) -> None:
        self.table(
            ["username", "role", "reseller", "domains"],
            ((p.user.username, p.role, p.reseller or "", ",".join(d.name for d in p.domains.all()))
             for p in Profile.objects.exclude(role=Role.MAILBOX).select_related("user", "reseller")),
        )  # fmt: skip

    def do_remove(self, username: str, **_) -> None:
        self._profile(username).user.delete()
        self.stdout.write(f"removed admin {username}")

    def do_token(self, username: str, **_) -> None:
        user = self._profile(username).user
        Token.objects.filter(user=user).delete()
        self.stderr.write(f"API token of {username} follows, shown only this once")
        self.stdout.write(Token.objects.create(user=user).key)
