# Sourced by the side-by-side scripts: the render workload. `gen DIR INSTANCES` writes, under DIR, the
# same objects three ways (kdeploy templates, a helm chart, a static kustomize base made from kdeploy's
# output); needs $repo and $kdeploy.
# gen DIR INSTANCES: 50 templates, each rendering INSTANCES copies of its four objects.
gen() {
  local dir=$1 instances=$2
  mkdir -p "$dir/kdeploy/templates" "$dir/helm/templates" "$dir/kustomize"
  {
    echo "global: {registry: registry.example.com, env: bench}"
    echo "apps:"
    for a in $(seq 0 49); do
      echo "  app$a: {image: team/app$a, tag: \"1.$a.0\", replicas: $((1 + a % 3)), port: $((8000 + a))}"
    done
  } > "$dir/values.yaml"
  cp "$dir/values.yaml" "$dir/kdeploy/values.yaml"
  cp "$dir/values.yaml" "$dir/helm/values.yaml"
  printf 'templates: [templates]\nvalues: [values.yaml]\nnamespace: bench\n' > "$dir/kdeploy/kdeploy.yaml"
  printf 'apiVersion: v2\nname: bench\nversion: 0.1.0\n' > "$dir/helm/Chart.yaml"
  for a in $(seq 0 49); do
    sed "s/APP/app$a/g; s/range(end=5)/range(end=$instances)/" "$repo/benches/corpus/app.yaml" > "$dir/kdeploy/templates/app$a.yaml"
    sed "s/APP/app$a/g; s/INSTANCES/$instances/" > "$dir/helm/templates/app$a.yaml" <<'T'
{{- $app := index .Values.apps "APP" }}
{{- range $i := until INSTANCES }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: APP-{{ $i }}
  labels: {app: APP, instance: "{{ $i }}", env: {{ $.Values.global.env }}}
  namespace: bench
spec:
  replicas: {{ $app.replicas }}
  selector:
    matchLabels: {app: APP, instance: "{{ $i }}"}
  template:
    metadata:
      labels: {app: APP, instance: "{{ $i }}"}
    spec:
      containers:
        - name: main
          image: {{ $.Values.global.registry }}/{{ $app.image }}:{{ $app.tag }}
          ports: [{containerPort: {{ $app.port }}}]
          env:
            - {name: GREETING, value: {{ printf "hello: from APP # %d" $i | quote }}}
---
apiVersion: v1
kind: Service
metadata: {name: APP-{{ $i }}, namespace: bench}
spec:
  selector: {app: APP, instance: "{{ $i }}"}
  ports: [{port: 80, targetPort: {{ $app.port }}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: APP-{{ $i }}-config, namespace: bench}
data:
  settings.yaml: |
    port: {{ $app.port }}
    replicas: {{ $app.replicas }}
  mode: "0755"
---
apiVersion: v1
kind: Secret
metadata: {name: APP-{{ $i }}-secret, namespace: bench}
type: Opaque
stringData:
  password: {{ printf "p@ss:%d#APP" $i | quote }}
{{- end }}
T
  done
  # kustomize renders no templates: its base is the same objects written out, one file per template.
  (cd "$dir/kdeploy" && "$kdeploy" render) > "$dir/kdeploy.out.yaml"
  awk -v dir="$dir/kustomize" '/^---$/ {n++} {f = sprintf("%s/part%02d.yaml", dir, int((n - 1) / 20)); print > f}' "$dir/kdeploy.out.yaml"
  { echo "resources:"; for f in "$dir"/kustomize/part*.yaml; do echo "- $(basename "$f")"; done; } > "$dir/kustomize/kustomization.yaml"
}

