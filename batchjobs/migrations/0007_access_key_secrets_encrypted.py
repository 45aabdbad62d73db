"""SigV4 secret access keys encrypted at rest (batchjobs.keyring) instead of kept in clear."""

from django.db import migrations, models

from batchjobs import keyring


def encrypt_secrets(apps, schema_editor):
    AccessKey = apps.get_model("batchjobs", "AccessKey")
    for key in AccessKey.objects.all():
        AccessKey.objects.filter(pk=key.pk).update(secret_ciphertext=keyring.encrypt(key.secret_access_key))


def decrypt_secrets(apps, schema_editor):
    AccessKey = apps.get_model("batchjobs", "AccessKey")
    for key in AccessKey.objects.all():
        AccessKey.objects.filter(pk=key.pk).update(secret_access_key=keyring.decrypt(key.secret_ciphertext))


class Migration(migrations.Migration):

    dependencies = [
        ("batchjobs", "0006_hpo_autotraining_and_resource_updates"),
    ]

    operations = [
        migrations.AddField(
            model_name="accesskey",
            name="secret_ciphertext",
            field=models.TextField(default=""),
            preserve_default=False,
        ),
        migrations.RunPython(encrypt_secrets, decrypt_secrets),
        migrations.RemoveField(
            model_name="accesskey",
            name="secret_access_key",
        ),
    ]
