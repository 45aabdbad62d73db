"""Console forms. They normalise what the browser sends; the creation rules live in the models'
`create_validated` classmethods, whose ServiceErrors `show_service_error` puts beside the right field."""

import json
import re

from django import forms

from batchjobs.errors import ServiceError
from batchjobs.kinds import INFERENCE, SEGMENT, JobKind
from batchjobs.models import (
    Dataset,
    DatasetGroup,
    DatasetImportJob,
    Filter,
    Role,
    Schema,
    Solution,
    SolutionVersion,
    Status,
)
from engine.recipes.catalog import RECIPES, UnknownRecipe
from engine.storage import InvalidS3Path, parse_s3_uri

ROLE_NAME_RE = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)


def show_service_error(form: forms.Form, exc: ServiceError, fields: dict[str, str]) -> None:
    """Attach a model-layer error to the form field for its API member, or to the form as a whole."""
    member = exc.field or ""
    # A nested member (solutionConfig.hpoConfig) belongs to the field of its nearest mapped parent.
    while member and member not in fields:
        member = member.rpartition(".")[0]
    field = fields.get(member)
    form.add_error(field if field in form.fields else None, exc.message)


NAME_HELP = "The name can contain up to 63 characters: letters, numbers, hyphens and underscores."


def _name_field(label: str) -> forms.CharField:
    return forms.CharField(label=label, max_length=63, help_text=NAME_HELP)


class DatasetGroupForm(forms.Form):
    # Map of API members (ServiceError.field) to form fields.
    API_FIELDS = {"name": "name", "domain": "domain"}

    name = _name_field("Dataset group name")
    domain = forms.ChoiceField(
        label="Domain", choices=DatasetGroup.Domain.choices, required=False, widget=forms.RadioSelect,
        initial="",
        help_text="A Custom group lets you train solutions with recipes; domain groups use preconfigured use cases.",
    )


# The required fields of each dataset type, as the service's standard schemas have them.
STANDARD_SCHEMAS = {
    "INTERACTIONS": Schema.record("Interactions", [
        {"name": "USER_ID", "type": "string"},
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
    ]),
    "ITEMS": Schema.record("Items", [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "GENRES", "type": ["null", "string"], "categorical": True},
    ]),
    "USERS": Schema.record("Users", [
        {"name": "USER_ID", "type": "string"},
        {"name": "AGE", "type": ["null", "int"]},
    ]),
}


def standard_schema_json(dataset_type: str) -> str:
    return json.dumps(STANDARD_SCHEMAS[dataset_type], indent=2)


class DatasetForm(forms.Form):
    API_FIELDS = {"name": "name", "datasetType": "dataset_type", "schemaArn": "existing_schema"}
    SCHEMA_API_FIELDS = {"name": "schema_name", "schema": "schema_json"}

    dataset_type = forms.ChoiceField(label="Dataset type", choices=Dataset.Type.choices)
    name = forms.CharField(label="Dataset name", max_length=63)
    schema_mode = forms.ChoiceField(
        label="Schema", choices=[("new", "Create new schema"), ("existing", "Use existing schema")],
        initial="new", widget=forms.RadioSelect,
    )
    existing_schema = forms.ModelChoiceField(
        label="Existing schema", queryset=Schema.objects.all(), required=False, empty_label="Choose a schema"
    )
    schema_name = forms.CharField(label="New schema name", max_length=63, required=False)
    schema_json = forms.CharField(
        label="Schema definition", required=False, widget=forms.Textarea(attrs={"rows": 14, "class": "code"}),
        initial=standard_schema_json("INTERACTIONS"),
        help_text="An Avro record schema in JSON. It must have the required fields of the dataset type.",
    )

    def clean(self):
        data = super().clean()
        if data.get("schema_mode") == "existing":
            if not data.get("existing_schema"):
                self.add_error("existing_schema", "Choose a schema.")
        else:
            if not data.get("schema_name"):
                self.add_error("schema_name", "Enter a name for the new schema.")
            if not data.get("schema_json"):
                self.add_error("schema_json", "Enter the schema definition.")
        return data


class DatasetImportJobForm(forms.Form):
    API_FIELDS = {
        "jobName": "job_name", "name": "job_name", "datasetArn": "dataset",
        "dataSource.dataLocation": "data_location", "roleArn": "role", "importMode": "import_mode",
    }

    job_name = forms.CharField(
        label="Dataset import job name", max_length=63,
        help_text="Letters, numbers, hyphens and underscores; unique in the account.",
    )
    dataset = forms.ModelChoiceField(label="Dataset", queryset=Dataset.objects.none(), empty_label=None)
    data_location = forms.CharField(
        label="S3 data location", max_length=256,
        widget=forms.TextInput(attrs={"placeholder": "s3://bucket/folder/interactions.csv"}),
        help_text="A CSV file, or a folder of CSV files, with a header row that matches the schema.",
    )
    role = forms.ModelChoiceField(
        label="IAM service role", queryset=Role.objects.all(), required=False, empty_label="Dataset group role",
        help_text="The role must be allowed to read the data location.",
    )
    import_mode = forms.ChoiceField(
        label="Import mode", choices=DatasetImportJob.ImportMode.choices, initial="FULL", widget=forms.RadioSelect
    )

    def __init__(self, *args, group: DatasetGroup, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = group.datasets.all()


def _hp_field_name(recipe_name: str, hp_name: str) -> str:
    return f"hp__{recipe_name}__{hp_name}"


def _as_api_string(value) -> str:
    # The API carries hyperparameters as strings; booleans are lower-case there.
    return str(value).lower() if isinstance(value, bool) else str(value)


class SolutionForm(forms.Form):
    API_FIELDS = {
        "name": "name", "recipeArn": "recipe", "solutionConfig": "recipe", "eventType": "event_type",
        "performAutoTraining": "perform_auto_training",
    }

    name = forms.CharField(
        label="Solution name", max_length=63,
        help_text="Letters, numbers, hyphens and underscores; unique in the account.",
    )
    recipe = forms.ChoiceField(label="Recipe")
    event_type = forms.CharField(
        label="Event type", required=False, max_length=256,
        help_text="Optional. Train only on interactions of this EVENT_TYPE; leave empty to use them all.",
    )
    perform_auto_training = forms.BooleanField(
        label="Automatic training", required=False, initial=True,
        help_text="A new solution version every 7 days, when interactions were imported since the last training "
        "(the service's default). The first one starts within the hour unless you create a version yourself.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["recipe"].choices = [(spec.arn, spec.name) for spec in RECIPES.values()]
        # One input per training hyperparameter of every recipe; the page shows the chosen recipe's.
        self.hyperparameter_fields: dict[str, list[str]] = {}
        for spec in RECIPES.values():
            names = []
            for hp in spec.hyperparameters:
                if hp.scope != "training":
                    continue
                field_name = _hp_field_name(spec.name, hp.name)
                self.fields[field_name] = forms.CharField(
                    label=hp.name, required=False, initial=_as_api_string(hp.default),
                    help_text=f"Default {_as_api_string(hp.default)}; {hp.describe_range()}.",
                )
                names.append(field_name)
            self.hyperparameter_fields[spec.arn] = names

    def recipe_fieldsets(self):
        """(recipe spec, bound fields of its hyperparameters) for the template."""
        return [(spec, [self[n] for n in self.hyperparameter_fields[spec.arn]]) for spec in RECIPES.values()]

    def changed_hyperparameters(self) -> dict[str, str]:
        """Only the values that differ from the recipe's defaults, as the API's strings."""
        spec = RECIPES[self.cleaned_data["recipe"]]
        changed = {}
        for hp in spec.hyperparameters:
            if hp.scope != "training":
                continue
            value = (self.cleaned_data.get(_hp_field_name(spec.name, hp.name)) or "").strip()
            if value and value != _as_api_string(hp.default):
                changed[hp.name] = value
        return changed


def _s3_lines(text: str, field_label: str) -> list[str]:
    paths = [line.strip() for line in text.splitlines() if line.strip()]
    for path in paths:
        try:
            parse_s3_uri(path)
        except InvalidS3Path:
            raise forms.ValidationError(
                f"{path} is not a valid S3 path: use s3://bucket/prefix/ ({field_label})."
            ) from None
    return paths


class RoleForm(forms.Form):
    name = forms.CharField(
        label="Role name", max_length=64,
        help_text="Up to 64 letters, numbers and the characters + = , . @ _ -",
    )
    read_prefixes = forms.CharField(
        label="Read access (s3:GetObject, s3:ListBucket)", required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "s3://bucket/input/", "class": "code"}),
        help_text="One s3:// path per line. Jobs using this role may read below these prefixes.",
    )
    write_prefixes = forms.CharField(
        label="Write access (s3:PutObject)", required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "s3://bucket/output/", "class": "code"}),
        help_text="One s3:// path per line. Jobs using this role may write below these prefixes.",
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not ROLE_NAME_RE.fullmatch(name):
            raise forms.ValidationError("Use up to 64 letters, numbers and the characters + = , . @ _ -")
        if Role.objects.filter(name=name).exists():
            raise forms.ValidationError(f"A role with the name {name} already exists.")
        return name

    def clean_read_prefixes(self) -> list[str]:
        return _s3_lines(self.cleaned_data["read_prefixes"], "read access")

    def clean_write_prefixes(self) -> list[str]:
        return _s3_lines(self.cleaned_data["write_prefixes"], "write access")


class SolutionVersionSelect(forms.Select):
    """Each version option carries data-solution, so the page's script can show only the chosen
    solution's versions."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        instance = getattr(value, "instance", None)
        if instance is not None:
            option["attrs"]["data-solution"] = str(instance.solution_id)
        return option


class SolutionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.name


class SolutionVersionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.version_id


EXPLORATION_WEIGHT = "batchInferenceJobConfig.itemExplorationConfig.explorationWeight"
EXPLORATION_AGE = "batchInferenceJobConfig.itemExplorationConfig.explorationItemAgeCutOff"
USER_PERSONALIZATION_RECIPE = "arn:aws:personalize:::recipe/aws-user-personalization"


FILTER_GRAMMAR = (
    "INCLUDE|EXCLUDE ItemID|UserID WHERE Dataset.FIELD IN (\"value\", ...) | NOT IN (...) | = < <= > >= value, "
    "joined with AND / OR within one dataset (Items, Interactions, Users); item filters may end with "
    "IF CurrentUser.FIELD = $PARAM. Chain statements with |. $NAME is a placeholder whose value each input line "
    "gives in filterValues (not allowed with NOT IN)."
)
FILTER_EXAMPLES = (
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")',
    "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)",
)


class FilterForm(forms.Form):
    API_FIELDS = {"name": "name", "filterExpression": "filter_expression"}

    name = _name_field("Filter name")
    filter_expression = forms.CharField(
        label="Expression", max_length=2500,
        widget=forms.Textarea(attrs={"rows": 5, "class": "code", "spellcheck": "false",
                                     "placeholder": FILTER_EXAMPLES[0]}),
        help_text=FILTER_GRAMMAR,
    )


class FilterSelect(forms.Select):
    """Each filter option carries its placeholders (data-placeholders), for the hint under the select."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        instance = getattr(value, "instance", None)
        if instance is not None:
            option["attrs"]["data-placeholders"] = ", ".join(instance.placeholders)
        return option


class FilterChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.name


def _filter_field() -> FilterChoiceField:
    return FilterChoiceField(
        label="Filter", queryset=Filter.objects.none(), required=False, empty_label="No filter",
        widget=FilterSelect,
        help_text="Placeholder values must be in each input line's filterValues.",
    )


def active_filters(group: DatasetGroup, target: str) -> list[int]:
    """Pks of the group's ACTIVE filters on `target` ("ItemID" or "UserID")."""
    found = []
    for row in group.filters.filter(status=Status.ACTIVE):
        try:
            if row.target == target:
                found.append(row.pk)
        except ValueError:
            continue
    return found


class _BatchJobForm(forms.Form):
    """The fields every kind of batch job has. A kind's form names its kind (batchjobs.kinds), which says
    which solutions it offers and which filters, and relabels what differs."""

    kind: JobKind
    API_FIELDS = {
        "jobName": "job_name",
        "name": "job_name",
        "solutionVersionArn": "solution_version",
        "numResults": "num_results",
        "jobInput.s3DataSource.path": "input_path",
        "jobOutput.s3DataDestination.path": "output_path",
        "roleArn": "role",
        "filterArn": "filter",
    }

    # Labels, help texts and placeholders that name what the kind makes: set per kind by __init__.
    job_name = forms.CharField(
        max_length=63,
        help_text=NAME_HELP + " It must be unique in your account.",
    )
    solution = SolutionChoiceField(
        label="Solution", queryset=Solution.objects.none(), empty_label="Choose a solution",
    )
    solution_version = SolutionVersionChoiceField(
        label="Solution version ID", queryset=SolutionVersion.objects.none(), widget=SolutionVersionSelect,
        empty_label="Choose a solution version",
    )
    num_results = forms.IntegerField(required=False, initial=25, widget=forms.NumberInput(attrs={"min": 1}))
    input_path = forms.CharField(label="S3 input path", max_length=256, widget=forms.TextInput)
    output_path = forms.CharField(
        label="S3 output path", max_length=256,
        widget=forms.TextInput(attrs={"placeholder": "s3://bucket/output-folder/"}),
        help_text="The folder where the job writes <input file name>.out.",
    )
    role = forms.ModelChoiceField(
        label="IAM service role", queryset=Role.objects.all(), empty_label="Choose a role",
        help_text="The role must allow reading the input path and writing the output path.",
    )
    filter = _filter_field()

    help_texts: dict[str, str]
    input_placeholder: str

    def __init__(self, *args, group: DatasetGroup, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["job_name"].label = f"{self.kind.title} name"
        self.fields["num_results"].label = self.kind.num_results_label
        self.fields["num_results"].widget.attrs["max"] = self.kind.max_num_results
        widget = self.fields["input_path"].widget
        widget.attrs = {"placeholder": self.input_placeholder, **widget.attrs}
        for name, text in self.help_texts.items():
            self.fields[name].help_text = text
        solutions = [s.pk for s in group.solutions.all() if _recipe_type(s) in self.kind.recipe_types]
        self.fields["solution"].queryset = Solution.objects.filter(pk__in=solutions).order_by("name")
        self.fields["solution_version"].queryset = (
            SolutionVersion.objects.filter(solution__in=solutions, status=Status.ACTIVE)
            .select_related("solution")
            .order_by("-created")
        )
        target = self.kind.filter_target
        self.fields["filter"].queryset = Filter.objects.filter(pk__in=active_filters(group, target)).order_by("name")

    def clean(self):
        data = super().clean()
        solution, version = data.get("solution"), data.get("solution_version")
        if solution and version and version.solution_id != solution.pk:
            self.add_error("solution_version", "This version does not belong to the chosen solution.")
        return data


class BatchInferenceJobForm(_BatchJobForm):
    kind = INFERENCE
    API_FIELDS = {
        **_BatchJobForm.API_FIELDS,
        EXPLORATION_WEIGHT: "exploration_weight",
        EXPLORATION_AGE: "exploration_item_age_cut_off",
    }
    help_texts = {
        "solution_version": "Only Active versions of the chosen solution can generate recommendations.",
        "num_results": "Optional. The number of recommendations for each input line. Default 25.",
        "input_path": "A JSON Lines file, or a folder of them, in the format the solution's recipe expects.",
    }
    input_placeholder = "s3://bucket/folder/file.json"

    exploration_weight = forms.CharField(
        label="Emphasis on exploring less relevant items (exploration weight)", required=False, initial="0.3",
        widget=forms.NumberInput(attrs={"min": 0, "max": 1, "step": "0.01"}),
        help_text="From 0 (no exploration) to 1 (more new, less relevant items). Default 0.3.",
    )
    exploration_item_age_cut_off = forms.CharField(
        label="Exploration item age cutoff", required=False, initial="30",
        widget=forms.NumberInput(attrs={"min": 1, "step": "any"}),
        help_text="Days back from the latest interaction; only items this young are explored. Minimum 1.",
    )

    def __init__(self, *args, group: DatasetGroup, **kwargs):
        super().__init__(*args, group=group, **kwargs)
        self.exploration_solution_ids = [
            s.pk for s in group.solutions.all() if s.recipe_arn == USER_PERSONALIZATION_RECIPE
        ]

    def uses_exploration(self) -> bool:
        solution = self.cleaned_data.get("solution")
        return solution is not None and solution.recipe_arn == USER_PERSONALIZATION_RECIPE

    def job_config(self) -> dict:
        """batchInferenceJobConfig: exploration only for User-Personalization; ignored otherwise."""
        if not self.uses_exploration():
            return {}
        exploration = {}
        weight = (self.cleaned_data.get("exploration_weight") or "").strip()
        age = (self.cleaned_data.get("exploration_item_age_cut_off") or "").strip()
        if weight:
            exploration["explorationWeight"] = weight
        if age:
            exploration["explorationItemAgeCutOff"] = age
        return {"itemExplorationConfig": exploration} if exploration else {}


class BatchSegmentJobForm(_BatchJobForm):
    kind = SEGMENT
    help_texts = {
        "solution": "Only solutions with a USER_SEGMENTATION recipe (aws-item-affinity, aws-item-attribute-affinity) "
        "make batch segments.",
        "solution_version": "Only Active versions of the chosen solution can generate segments.",
        "num_results": "Optional. The number of users in each item's segment. Default 25.",
        "input_path": 'A JSON Lines file, or a folder of them, with one {"itemId": "..."} (aws-item-affinity) or '
        '{"itemAttributes": "ITEMS.genres = \\"Comedy\\""} (aws-item-attribute-affinity) per line.',
    }
    input_placeholder = "s3://bucket/folder/items.json"


def _recipe_type(solution: Solution) -> str:
    try:
        return solution.recipe.recipe_type
    except UnknownRecipe:
        return ""
