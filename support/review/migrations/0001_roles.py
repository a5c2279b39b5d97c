"""The Agents and Admins groups. Until now every active staff account was an agent: those accounts join
Agents, and superusers join Admins, so nobody loses access with the upgrade."""

from typing import Any

from django.db import migrations


def create_roles(apps: Any, schema_editor: Any) -> None:
    Group = apps.get_model("auth", "Group")
    User = apps.get_model("auth", "User")
    agents, _ = Group.objects.get_or_create(name="Agents")
    admins, _ = Group.objects.get_or_create(name="Admins")
    for user in User.objects.filter(is_active=True, is_staff=True, is_superuser=False):
        user.groups.add(agents)
    for user in User.objects.filter(is_superuser=True):
        user.groups.add(admins)


class Migration(migrations.Migration):
    dependencies = [("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
