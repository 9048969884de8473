# docker buildx bake -f docker/docker-bake.hcl [--set *.platform=linux/arm64] [TARGET...]
# Tags: clara-stream/<image>:<VERSION>-cpu|cuda, as the Helm charts expect (images.tag + variant).
variable "REGISTRY" { default = "" }  # e.g. "nvcr.io/myorg/" (with the trailing slash)
variable "NAMESPACE" { default = "clara-stream" }
variable "VERSION" { default = "0.1.0" }

group "default" {
  targets = ["dicom-adapter-cpu", "dicom-adapter-cuda", "render-server-cpu", "render-server-cuda", "app-cpu", "app-cuda"]
}

target "_common" {
  context    = "."
  dockerfile = "docker/Dockerfile"
  platforms  = ["linux/amd64", "linux/arm64"]
}

target "dicom-adapter" {
  inherits = ["_common"]
  name     = "dicom-adapter-${variant}"
  matrix   = { variant = ["cpu", "cuda"] }
  target   = "dicom-adapter"
  args     = { VARIANT = variant, EXTRAS = "dicom,volume,video" }
  tags     = ["${REGISTRY}${NAMESPACE}/dicom-adapter:${VERSION}-${variant}"]
}

target "render-server" {
  inherits = ["_common"]
  name     = "render-server-${variant}"
  matrix   = { variant = ["cpu", "cuda"] }
  target   = "render-server"
  args     = { VARIANT = variant, EXTRAS = "render" }
  tags     = ["${REGISTRY}${NAMESPACE}/render-server:${VERSION}-${variant}"]
}

target "app" {
  inherits = ["_common"]
  name     = "app-${variant}"
  matrix   = { variant = ["cpu", "cuda"] }
  target   = "app"
  args     = { VARIANT = variant, EXTRAS = "video,volume" }
  tags     = ["${REGISTRY}${NAMESPACE}/app:${VERSION}-${variant}"]
}
