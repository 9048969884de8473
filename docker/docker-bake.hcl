# docker buildx bake -f docker/docker-bake.hcl [--set *.platform=linux/arm64] [TARGET...]
# Targets: <image>-<variant>, e.g. dicom-adapter-cuda. Tags: <REGISTRY><NAMESPACE>/<image>:<VERSION>-<variant>,
# as the Helm charts expect (images.tag + -cpu/-cuda).
variable "REGISTRY" { default = "" }  # e.g. "nvcr.io/myorg/" (with the trailing slash)
variable "NAMESPACE" { default = "clara-stream" }
variable "VERSION" { default = "0.1.0" }

# The pip extras each image installs (the adapter runs the apps' jobs in its pod).
function "extras" {
  params = [image]
  result = image == "render-server" ? "render" : image == "app" ? "video,volume" : "dicom,volume,video"
}

group "default" { targets = ["image"] }

target "image" {
  name       = "${image}-${variant}"
  matrix     = { image = ["dicom-adapter", "render-server", "app"], variant = ["cpu", "cuda"] }
  context    = "."
  dockerfile = "docker/Dockerfile"
  platforms  = ["linux/amd64", "linux/arm64"]
  target     = image
  args       = { VARIANT = variant, EXTRAS = extras(image) }
  tags       = ["${REGISTRY}${NAMESPACE}/${image}:${VERSION}-${variant}"]
}
