#!/usr/bin/env bash
# The plain Azure CLI route (no azd): provision infra/main.bicep into a resource group, then publish the app.
#
#   AUTH0_MANAGEMENT_CLIENT_ID=... AUTH0_MANAGEMENT_CLIENT_SECRET=... \
#     infra/deploy.sh -g rg-customer-provisioning -p infra/prod.parameters.json [-l westeurope] [--infra-only|--code-only]
#     infra/deploy.sh -g rg-customer-provisioning --code-only [-n func-cprov-...]   # code only, onto the app found
#
# The Auth0 Management API client's id and secret are read from the environment (never the command line, which
# other users of the machine can see) and go to Key Vault through a parameters file only this user can read; leave
# them unset on later runs to keep the stored ones. Needs az (logged in) and python3. docs/DEPLOYING.md explains.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
RG="" PARAMS="" LOCATION="" APP="" DO_INFRA=1 DO_CODE=1
while [ $# -gt 0 ]; do
  case "$1" in
    -g) RG="$2"; shift 2 ;;
    -p) PARAMS="$2"; shift 2 ;;
    -l) LOCATION="$2"; shift 2 ;;
    -n) APP="$2"; shift 2 ;;
    --infra-only) DO_CODE=0; shift ;;
    --code-only) DO_INFRA=0; shift ;;
    *) usage ;;
  esac
done
[ -n "$RG" ] || usage

if [ -n "$LOCATION" ]; then
  az group create --name "$RG" --location "$LOCATION" --output none
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"

if [ "$DO_INFRA" = 1 ]; then
  [ -n "$PARAMS" ] || usage
  # The secrets, if given, in a parameters file of their own (mode 600, removed on exit).
  python3 - "$work/secrets.json" <<'PY'
import json, os, sys
values = {"auth0ManagementClientId": os.environ.get("AUTH0_MANAGEMENT_CLIENT_ID", ""),
          "auth0ManagementClientSecret": os.environ.get("AUTH0_MANAGEMENT_CLIENT_SECRET", "")}
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    json.dump({"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
               "contentVersion": "1.0.0.0", "parameters": {k: {"value": v} for k, v in values.items()}}, f)
PY
  name="customer-provisioning-$(date -u +%Y%m%d%H%M%S)"
  echo "provisioning infra/main.bicep into $RG (deployment $name)"
  az deployment group create --resource-group "$RG" --name "$name" --template-file infra/main.bicep \
    --parameters "@$PARAMS" --parameters "@$work/secrets.json" --output none
fi

# The Function App of infra/main.bicep in $RG: the FUNCTION_APP_NAME output of its latest successful deployment,
# whoever named it (this script: customer-provisioning-<time>; `azd up`: <environment>-<time>), else the app the
# template tags azd-service-name=app (the deployment history may have been cleaned up), else -n.
find_app() {
  local app
  app="$(az deployment group list --resource-group "$RG" \
    --query "sort_by([?properties.provisioningState=='Succeeded' && properties.outputs.FUNCTION_APP_NAME], &properties.timestamp)[-1].properties.outputs.FUNCTION_APP_NAME.value" \
    --output tsv)"
  if [ -z "$app" ]; then
    app="$(az functionapp list --resource-group "$RG" --query "[?tags.\"azd-service-name\"=='app'].name" --output tsv)"
  fi
  if [ -z "$app" ]; then
    echo "no Function App of infra/main.bicep in $RG (no successful deployment with a FUNCTION_APP_NAME output, no" \
      "app tagged azd-service-name=app): deploy the infrastructure first (without --code-only, or azd up), or name" \
      "the app with -n" >&2
    return 1
  fi
  if [ "$(printf '%s\n' "$app" | wc -l)" -gt 1 ]; then
    echo "several Function Apps in $RG are tagged azd-service-name=app ($(echo $app)): name one with -n" >&2
    return 1
  fi
  printf '%s\n' "$app"
}

if [ "$DO_CODE" = 1 ]; then
  app="${APP:-$(find_app)}" || exit 1
  # The files Azure runs (the same list .funcignore keeps); Python packages are installed by the remote build.
  python3 - "$work/app.zip" <<'PY'
import os, sys, zipfile
keep_files = ["function_app.py", "host.json", "requirements.txt"]
keep_dirs = ["functions", "shared", "config"]
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for f in keep_files:
        z.write(f)
    for d in keep_dirs:
        for root, dirs, files in os.walk(d):
            dirs[:] = [x for x in dirs if x != "__pycache__"]
            for f in files:
                if not f.endswith(".pyc"):
                    z.write(os.path.join(root, f))
PY
  echo "publishing to $app (remote build installs requirements.txt)"
  az functionapp deployment source config-zip --resource-group "$RG" --name "$app" --src "$work/app.zip" \
    --build-remote true --output none
  echo "done: $app"
fi
