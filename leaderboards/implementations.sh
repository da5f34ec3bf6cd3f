#!/usr/bin/env bash
# The cross-library table (issue 11): every algorithm that exists in two or more implementations (advbench's own
# and the adapter plugins' ta.*, fb.*, art.*, al.*), run at MATCHED hyperparameters on the shipped mnist-5k models,
# then `advbench leaderboard --compare-implementations` per run.
#   bash leaderboards/implementations.sh                 # every group, both models
#   bash leaderboards/implementations.sh grad500 score   # only these groups (grad500, grad100, cw, score, label,
#                                                        # ensemble, uap)
#   JOBS=2 bash leaderboards/implementations.sh          # both models at once, one process each (2 cores)
#   ONLY_EXISTING=1 bash leaderboards/implementations.sh grad500 score   # rebuild the tables of the finished runs
#                                                        # only (recomputing just cells whose settings changed)
# Needs the four adapter plugins and their libraries installed (see plugins/advbench-*/README.md).
# CPU only, one process at a time, one thread (OMP_NUM_THREADS=1): about 1-1.5 h on a loaded 2-core machine.
# Run directories stay under runs/implementations/ (re-running reuses matching cells: --resume).
#
# Settings (advbench's own attack at its defaults unless said; every peer set to the same values where the library
# exposes them):
#   linf eps 0.1 (cnn.mnist5k_std) / 0.3 (cnn.mnist5k_pgdat); l2 eps 1.5 for both; test split, seed 0.
#   grad500 (500 samples): fgsm; bim (Kurakin's step rule: 29 steps at 0.1, 80 at 0.3, 10 under l2; step 1.25*eps/steps);
#     mifgsm (10 steps, step eps/10, decay 1); pgd (40 steps, step 2.5*eps/40, random start, 1 restart; the l2
#     start's radius: uniform in [0, eps] in advbench and torchattacks, uniform in the ball in Foolbox and ART);
#     apgd_ce, apgd_dlr (100 steps, 1 restart, rho 0.75); deepfool (50 steps, overshoot 0.02, 10 candidates; only
#     advbench and Foolbox let the overshoot scale the accumulated sum). Peers return their last iterate
#     (advbench's iterative attacks keep each sample's first adversarial iterate).
#   grad100 (100 samples): apgd_t (100 steps, 9 target classes); fab, fab_t (100 steps, 1 restart, fab_t 9 targets);
#     fmn, ddn (100 steps; no advbench implementation: Foolbox vs adv-lib).
#   cw (100 samples): cw_l2 at 5 binary-search steps x 200 Adam steps, lr 0.01, c_init 1e-3, abort early (advbench's
#     default is 9 x 1000: reduced for CPU cost, for every implementation alike); torchattacks' CW has no binary
#     search (one fixed c = 1, 200 steps). cw_linf (ART vs adv-lib): 100 steps, c_init 1e-5.
#   score (100 samples, hard budget --queries 1000 per sample): square (1000 queries, p_init 0.8, margin loss);
#     spsa (32 directions, delta 0.01, lr 0.01; torchattacks: 15 iterations of 32 samples, linf only);
#     simba (pixel basis, step eps under linf, 0.2 under l2).
#   label (100 samples, --queries 1000): hopskipjump, boundary, every implementation stopped by the same budget.
#   uap (100 samples, linf): one universal perturbation learnt on the 4,000-image train split, one pass over it,
#     DeepFool inside (Moosavi-Dezfooli et al.'s algorithm): advbench's uap (method=deepfool: mini-batches of 250,
#     mean DeepFool step) vs ART's UniversalPerturbation (attacker deepfool, image by image). One pass because ART's
#     image-by-image loop costs about 25 min of one core per pass (measured on std; advbench's: about 1 min).
#   ensemble (100 samples): AutoAttack standard (APGD-CE, APGD-T 9 targets, FAB-T 9 targets, Square 5000 queries),
#     advbench's `ensemble` at its defaults vs torchattacks' AutoAttack (version standard) as it ships: torchattacks
#     builds its members at its own defaults (APGD, APGD-T, FAB 10 steps) and exposes no option to change them.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/implementations
mkdir -p "$out"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(grad500 score grad100 label cw ensemble uap)

# run MODEL NORM EPS GROUP N_SAMPLES ATTACKS [extra advbench run args...]: one run dir, its comparison as markdown.
run() {
    local model=$1 norm=$2 eps=$3 group=$4 n=$5 attacks=$6; shift 6
    local dir="$out/${model}-${group}-${norm}"
    # Keep only the --attack-opt items of attacks in this run (the option lists are shared by the norms).
    local args=() a
    while [ $# -gt 0 ]; do
        if [ "$1" = --attack-opt ]; then
            a=${2%%=*}; a=${a%.*}
            [[ ",$attacks," == *",$a,"* ]] && args+=("$1" "$2")
            shift 2
        else
            args+=("$1"); shift
        fi
    done
    set -- "${args[@]}"
    if [ -n "${ONLY_EXISTING:-}" ] && [ ! -f "$dir/results.parquet" ]; then
        echo "skip $dir (ONLY_EXISTING: never run to the end)" >&2
        return 0
    fi
    local cmd=(advbench run --models "$model" --attacks "$attacks" --norm "$norm" --eps "$eps" --n-samples "$n"
               --seed 0 --out "$dir" --resume --quiet --no-save-adversarials --format csv "$@")
    echo "+ ${cmd[*]}" >&2
    nice -n 5 "${cmd[@]}" > /dev/null
    {
        echo
        echo "### ${group}, ${norm} eps ${eps}, ${n} samples"
        echo
        echo '```'
        echo "${cmd[*]}"
        echo '```'
        echo
        advbench leaderboard "$dir" --compare-implementations --format md
    } >> "leaderboards/implementations-${model}.md.part"
}

opts() { local a; for a in "$@"; do printf -- '--attack-opt\n%s\n' "$a"; done; }

# group_runs MODEL LINF_EPS GROUP: the runs of one group on one model.
group_runs() {
    local model=$1 linf=$2 group=$3
    local l2=1.5 bim_steps rel
    bim_steps=$(python -c "import math; print(max(1, math.floor(min($linf*255+4, 1.25*$linf*255)+1e-9)))")
    rel=$(python -c "print(1.25/$bim_steps)")
    local pgd=(ta.pgd.steps=40 ta.pgd.rel_stepsize=0.0625 fb.pgd.steps=40 fb.pgd.rel_stepsize=0.0625
               art.pgd.steps=40 art.pgd.rel_stepsize=0.0625 art.pgd.random_start=true
               al.pgd.steps=40 al.pgd.rel_stepsize=0.0625)
    local mi=(ta.mifgsm.steps=10 ta.mifgsm.rel_stepsize=0.1 fb.mifgsm.steps=10 fb.mifgsm.rel_stepsize=0.1
              art.mifgsm.steps=10 art.mifgsm.rel_stepsize=0.1)
    local apgd=(ta.apgd_ce.steps=100 art.apgd_ce.steps=100 art.apgd_ce.restarts=1 al.apgd_ce.steps=100
                ta.apgd_dlr.steps=100 art.apgd_dlr.steps=100 art.apgd_dlr.restarts=1 al.apgd_dlr.steps=100)
    local df=(ta.deepfool.steps=50 fb.deepfool.steps=50 art.deepfool.steps=50 art.deepfool.overshoot=0.02
              al.deepfool.steps=50)
    case $group in
    grad500)
        mapfile -t o < <(opts "${pgd[@]}" "${mi[@]}" "${apgd[@]}" "${df[@]}" \
            ta.bim.steps="$bim_steps" ta.bim.rel_stepsize="$rel" fb.bim.steps="$bim_steps" \
            fb.bim.rel_stepsize="$rel" art.bim.steps="$bim_steps" art.bim.rel_stepsize="$rel")
        run "$model" linf "$linf" grad500 500 fgsm,ta.fgsm,fb.fgsm,art.fgsm,bim,ta.bim,fb.bim,art.bim,mifgsm,ta.mifgsm,fb.mifgsm,art.mifgsm,pgd,ta.pgd,fb.pgd,art.pgd,al.pgd,apgd_ce,ta.apgd_ce,art.apgd_ce,al.apgd_ce,apgd_dlr,ta.apgd_dlr,art.apgd_dlr,al.apgd_dlr,deepfool,fb.deepfool,al.deepfool "${o[@]}"
        mapfile -t o < <(opts "${pgd[@]}" "${mi[@]}" "${apgd[@]}" "${df[@]}" fb.bim.steps=10 fb.bim.rel_stepsize=0.125)
        run "$model" l2 "$l2" grad500 500 fgsm,fb.fgsm,art.fgsm,bim,fb.bim,mifgsm,fb.mifgsm,art.mifgsm,pgd,ta.pgd,fb.pgd,art.pgd,apgd_ce,ta.apgd_ce,art.apgd_ce,al.apgd_ce,apgd_dlr,ta.apgd_dlr,art.apgd_dlr,al.apgd_dlr,deepfool,ta.deepfool,fb.deepfool,art.deepfool,al.deepfool "${o[@]}"
        ;;
    grad100)
        mapfile -t o < <(opts ta.apgd_t.steps=100 ta.apgd_t.n_target_classes=9 al.apgd_t.steps=100 \
            al.apgd_t.n_target_classes=9 ta.fab.steps=100 al.fab.steps=100 al.fab.restarts=1 ta.fab_t.steps=100 \
            al.fab_t.steps=100 fb.fmn.steps=100 al.fmn.steps=100 fb.ddn.steps=100 al.ddn.steps=100)
        for norm in linf l2; do
            local e=$linf; [ "$norm" = l2 ] && e=$l2
            local extra=""; [ "$norm" = l2 ] && extra=",fb.ddn,al.ddn"
            run "$model" "$norm" "$e" grad100 100 "apgd_t,ta.apgd_t,al.apgd_t,fab,ta.fab,al.fab,fab_t,ta.fab_t,al.fab_t,fb.fmn,al.fmn$extra" "${o[@]}"
        done
        ;;
    cw)
        mapfile -t o < <(opts cw_l2.binary_search_steps=5 cw_l2.steps=200 fb.cw_l2.binary_search_steps=5 \
            fb.cw_l2.steps=200 al.cw_l2.binary_search_steps=5 al.cw_l2.steps=200 art.cw_l2.binary_search_steps=5 \
            art.cw_l2.steps=200 art.cw_l2.c_init=0.001 ta.cw_l2.steps=200)
        run "$model" l2 "$l2" cw 100 cw_l2,ta.cw_l2,fb.cw_l2,art.cw_l2,al.cw_l2 "${o[@]}"
        mapfile -t o < <(opts art.cw_linf.steps=100 al.cw_linf.steps=100)
        run "$model" linf "$linf" cw 100 art.cw_linf,al.cw_linf "${o[@]}"
        ;;
    score)
        for norm in linf l2; do
            local e=$linf step=$linf atk="square,ta.square,art.square,spsa,ta.spsa,simba,art.simba"
            [ "$norm" = l2 ] && { e=$l2; step=0.2; atk="square,ta.square,art.square,simba,art.simba"; }
            mapfile -t o < <(opts square.max_queries=1000 ta.square.max_queries=1000 art.square.max_queries=1000 \
                spsa.max_queries=1000 ta.spsa.nb_sample=32 ta.spsa.nb_iter=15 simba.max_queries=1000 \
                art.simba.basis=pixel art.simba.step_size="$step" art.simba.steps=1000)
            run "$model" "$norm" "$e" score 100 "$atk" --queries 1000 "${o[@]}"
        done
        ;;
    label)
        mapfile -t o < <(opts hopskipjump.max_queries=1000 boundary.max_queries=1000)
        run "$model" l2 "$l2" label 100 hopskipjump,fb.hopskipjump,art.hopskipjump,boundary,fb.boundary,art.boundary \
            --queries 1000 "${o[@]}"
        run "$model" linf "$linf" label 100 hopskipjump,fb.hopskipjump,art.hopskipjump --queries 1000 "${o[@]}"
        ;;
    uap)
        mapfile -t o < <(opts uap.method=deepfool uap.max_passes=1 art.uap.max_passes=1)
        run "$model" linf "$linf" uap 100 uap,art.uap "${o[@]}"
        ;;
    ensemble)
        run "$model" linf "$linf" ensemble 100 ensemble,ta.ensemble
        run "$model" l2 "$l2" ensemble 100 ensemble,ta.ensemble
        ;;
    *) echo "unknown group $group (grad500, grad100, cw, score, label, ensemble, uap)" >&2; exit 2 ;;
    esac
}

for m in std pgdat; do rm -f "leaderboards/implementations-cnn.mnist5k_${m}.md.part"; done
# model_runs MODEL LINF_EPS: every chosen group on one model, cheaper groups first (an interrupted run has them).
model_runs() { local group; for group in "${groups[@]}"; do group_runs "$1" "$2" "$group"; done; }
if [ "${JOBS:-1}" -ge 2 ]; then
    # One process per model; each appends only to its own model's .md.part. Fail if either fails.
    model_runs cnn.mnist5k_std 0.1 & std_pid=$!
    model_runs cnn.mnist5k_pgdat 0.3 & pgdat_pid=$!
    rc=0; wait "$std_pid" || rc=1; wait "$pgdat_pid" || rc=1
    [ "$rc" -eq 0 ] || { echo "error: a model's runs failed (see above); finished cells are kept: rerun to resume" >&2; exit 1; }
else
    model_runs cnn.mnist5k_std 0.1
    model_runs cnn.mnist5k_pgdat 0.3
fi

# Header: exact settings (the lines above), versions, date; then each run's table.
for model in cnn.mnist5k_std cnn.mnist5k_pgdat; do
    {
        echo "# Cross-library comparison: ${model} (mnist-5k test split, seed 0)"
        echo
        echo "Produced by \`bash leaderboards/implementations.sh ${groups[*]}\` on $(date -u +%Y-%m-%d) (CPU, one thread);"
        echo "runs: $(cd "$out" && ls -d "${model}"-* | tr '\n' ' ')"
        echo "Versions: $(python - <<'EOF'
from importlib.metadata import version
names = ["advbench", "torch", "torchattacks", "foolbox", "adversarial-robustness-toolbox", "adv-lib"]
print(", ".join(f"{n} {version(n)}" for n in names))
EOF
)"
        echo
        echo "Matched hyperparameters (see the script's header for every setting and what cannot be matched):"
        echo
        sed -n '/^# Settings/,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}/    /'
        echo
        echo "## Summary"
        echo
        echo "Robust accuracy (%) per library; bold: the best of the row; (w): weaker than the best beyond its 95%"
        echo "Wilson interval; last column: advbench minus the best other library (issue 11 asks for at most +1)."
        echo
        python leaderboards/implementations_pivot.py "$model" "$out/${model}"-*
        echo
        echo "## Each run, in full"
        echo
        echo "robust % with its 95% Wilson interval; weaker = above the upper end of the best implementation's interval."
        cat "leaderboards/implementations-${model}.md.part"
    } > "leaderboards/implementations-${model}.md"
    rm -f "leaderboards/implementations-${model}.md.part"
    echo "wrote leaderboards/implementations-${model}.md" >&2
done
